package hlsorigin

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
)

// sequenceError is a media playlist that would break RFC 8216 6.2.1 for
// players that loaded the rendition's previous one: a lower
// EXT-X-MEDIA-SEQUENCE, or a published sequence number naming another
// segment.
type sequenceError struct{ msg string }

func (e *sequenceError) Error() string { return e.msg }

// nextSequence checks the media playlist pl, PUT at ob, against the
// rendition's stored playlist prev (has: there is one) and returns the
// EXT-X-DISCONTINUITY-SEQUENCE it must carry (RFC 8216 4.3.3.3, 6.2.2):
// the stored one plus the EXT-X-DISCONTINUITY tags of the segments that
// left the window. The writer's own value is ignored: ffmpeg 5.1 writes
// none, and after a restart or failover the new runner knows nothing of
// its predecessor's discontinuities; only the origin saw them all.
func nextSequence(ob object, prev playlist, has bool, pl playlist) (int64, error) {
	if !has {
		return pl.DiscSeq, nil
	}
	if pl.MediaSeq < prev.MediaSeq {
		return 0, &sequenceError{fmt.Sprintf("EXT-X-MEDIA-SEQUENCE %d is lower than the %d already published for rendition %q (RFC 8216 6.2.1: it must not decrease)",
			pl.MediaSeq, prev.MediaSeq, ob.Rendition)}
	}
	published := map[int64]string{}
	for _, s := range prev.Segments {
		if !s.Init {
			published[s.Seq] = segmentKey(ob, s.URI)
		}
	}
	for _, s := range pl.Segments {
		if s.Init {
			continue
		}
		if k, ok := published[s.Seq]; ok && k != segmentKey(ob, s.URI) {
			return 0, &sequenceError{fmt.Sprintf("media sequence number %d is already published as %q; this playlist lists %q under it (RFC 8216 6.2.1: a sequence number names one segment)",
				s.Seq, k, s.URI)}
		}
	}
	d := prev.DiscSeq
	for _, s := range prev.Segments {
		if !s.Init && s.Disc && s.Seq < pl.MediaSeq {
			d++
		}
	}
	return d, nil
}

// segmentKey is the object a listed URI names, or the URI itself when it
// names none (checkListed refuses those before this is asked).
func segmentKey(ob object, uri string) string {
	if so, ok := resolve(ob, uri); ok {
		return so.Key()
	}
	return uri
}

// withDiscontinuitySequence returns the media playlist b with one
// EXT-X-DISCONTINUITY-SEQUENCE:d, placed after EXT-X-MEDIA-SEQUENCE (or
// EXT-X-TARGETDURATION, or #EXTM3U), before any segment; a tag the writer
// put there is replaced.
func withDiscontinuitySequence(b []byte, d int64) []byte {
	tag := []byte("#EXT-X-DISCONTINUITY-SEQUENCE:" + strconv.FormatInt(d, 10))
	lines := bytes.SplitAfter(b, []byte("\n"))
	out := make([][]byte, 0, len(lines)+1)
	after := -1 // index in out after which the tag goes
	rank := 0   // 3: MEDIA-SEQUENCE, 2: TARGETDURATION, 1: #EXTM3U
	for _, l := range lines {
		t := bytes.TrimSpace(l)
		switch {
		case bytes.HasPrefix(t, []byte("#EXT-X-DISCONTINUITY-SEQUENCE:")):
			continue
		case bytes.HasPrefix(t, []byte("#EXT-X-MEDIA-SEQUENCE:")) && rank < 3:
			after, rank = len(out), 3
		case bytes.HasPrefix(t, []byte("#EXT-X-TARGETDURATION:")) && rank < 2:
			after, rank = len(out), 2
		case bytes.HasPrefix(t, []byte("#EXTM3U")) && rank < 1:
			after, rank = len(out), 1
		}
		out = append(out, l)
	}
	var w bytes.Buffer
	w.Grow(len(b) + len(tag) + 2)
	for i, l := range out {
		w.Write(l)
		if i == after {
			if !bytes.HasSuffix(l, []byte("\n")) {
				w.WriteByte('\n')
			}
			w.Write(tag)
			w.WriteByte('\n')
		}
	}
	return w.Bytes()
}

// pinnedTarget is the EXT-X-TARGETDURATION a rendition's media playlist
// pl, PUT after prev (has: there is one), must carry: never lower than
// the one published before (RFC 8216 6.2.1: it must not change). A writer
// computes it from the segments in its window, so a copy rendition, whose
// segments follow the source's keyframes, wrote 2 then 1 again after a
// runner restart. It rises only when a segment of pl needs it to (its
// EXTINF rounded must not exceed it, 4.3.3.1); players take the rise as
// they take a new segment.
func pinnedTarget(prev playlist, has bool, pl playlist) time.Duration {
	if has && prev.Target > pl.Target {
		return prev.Target
	}
	return pl.Target
}

// withTargetDuration returns the media playlist b with its
// EXT-X-TARGETDURATION set to d, in whole seconds rounded up.
func withTargetDuration(b []byte, d time.Duration) []byte {
	tag := []byte("#EXT-X-TARGETDURATION:")
	i := bytes.Index(b, tag)
	if i < 0 {
		return b
	}
	end := i + len(tag)
	for end < len(b) && b[end] != '\n' && b[end] != '\r' {
		end++
	}
	v := strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
	out := make([]byte, 0, len(b)+len(v))
	out = append(out, b[:i+len(tag)]...)
	out = append(out, v...)
	return append(out, b[end:]...)
}
