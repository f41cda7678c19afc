package hlsorigin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The master playlist is completed when it is served, not when it is
// stored: what it needs (the sizes and durations of the segments each
// rendition lists now, and the media of its current run) changes with
// every segment, while ffmpeg PUTs the master once per run. Completing on
// store would mean rewriting the master object on every media playlist
// (one more backend write per segment and rendition, on S3 a PUT each),
// and its bit rates would still be those of the moment of the last write.
// On read it costs a few map lookups under the stream's lock, plus one
// segment read per rendition and run (cached in streamState.probes). The
// stored object stays what the writer sent.

// variantStats is what the origin measured of one rendition.
type variantStats struct {
	peak, average int64 // bits per second; 0: no segment measured
	info          mediaInfo
	probed        bool // info holds a successful probe
}

// probeResult is the cached probe of a rendition's current run.
type probeResult struct {
	run  int64 // discontinuity count before the probed segment
	info mediaInfo
	err  error
}

// completeMaster returns the master playlist b with each EXT-X-STREAM-INF
// completed from the origin's measurements of its rendition. A rendition
// without a measured segment keeps what the writer wrote.
func (o *Origin) completeMaster(ctx context.Context, ob object, b []byte) []byte {
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		if !strings.HasPrefix(line, "#EXT-X-STREAM-INF:") {
			continue
		}
		j := i + 1
		for j < len(lines) && (strings.TrimSpace(lines[j]) == "" || strings.HasPrefix(strings.TrimSpace(lines[j]), "#")) {
			j++
		}
		if j == len(lines) {
			break
		}
		mo, ok := resolveMedia(ob, strings.TrimSpace(lines[j]))
		if !ok {
			continue
		}
		vs := o.measure(ctx, mo)
		if vs.average == 0 {
			continue
		}
		lines[i] = "#EXT-X-STREAM-INF:" + completeStreamInf(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"), vs)
	}
	return []byte(strings.Join(lines, "\n"))
}

// completeStreamInf applies vs to an attribute list. Values the writer
// declared are kept unless the measurement shows them wrong: BANDWIDTH
// only rises (it must be at least the peak segment bit rate), CODECS,
// RESOLUTION and FRAME-RATE are those of the media when it was probed.
func completeStreamInf(list string, vs variantStats) string {
	attrs := splitAttrs(list)
	declared, _ := strconv.ParseInt(attrs.get("BANDWIDTH"), 10, 64)
	attrs.set("BANDWIDTH", strconv.FormatInt(max(declared, vs.peak), 10))
	attrs.set("AVERAGE-BANDWIDTH", strconv.FormatInt(vs.average, 10))
	if vs.probed {
		attrs.set("CODECS", `"`+strings.Join(vs.info.Codecs, ",")+`"`)
		if vs.info.Width > 0 && vs.info.Height > 0 {
			attrs.set("RESOLUTION", strconv.Itoa(vs.info.Width)+"x"+strconv.Itoa(vs.info.Height))
		}
		if vs.info.FPS > 0 {
			attrs.set("FRAME-RATE", strconv.FormatFloat(vs.info.FPS, 'f', 3, 64))
		}
	}
	return attrs.String()
}

// attrList is an attribute list in its order, values as written (quoted
// strings keep their quotes).
type attrList []struct{ k, v string }

func splitAttrs(s string) attrList {
	var out attrList
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				end = len(rest) - 1
			}
			v, rest = rest[:end+2], rest[end+2:]
		} else {
			v, rest, _ = strings.Cut(rest, ",")
			rest = "," + rest
		}
		out = append(out, struct{ k, v string }{strings.TrimSpace(k), v})
		s = strings.TrimPrefix(strings.TrimLeft(rest, " "), ",")
	}
	return out
}

func (a attrList) get(k string) string {
	for _, kv := range a {
		if kv.k == k {
			return strings.Trim(kv.v, `"`)
		}
	}
	return ""
}

func (a *attrList) set(k, v string) {
	for i := range *a {
		if (*a)[i].k == k {
			(*a)[i].v = v
			return
		}
	}
	*a = append(*a, struct{ k, v string }{k, v})
}

func (a attrList) String() string {
	var b strings.Builder
	for i, kv := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv.k + "=" + kv.v)
	}
	return b.String()
}

// resolveMedia resolves a URI a master playlist lists to a media playlist
// of the same stream on this origin.
func resolveMedia(master object, uri string) (object, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return object{}, false
	}
	r := (&url.URL{Path: master.Path()}).ResolveReference(&url.URL{Path: u.Path})
	o, ok := parsePath(r.Path)
	if !ok || o.Stream != master.Stream || o.Kind != kindMedia {
		return object{}, false
	}
	return o, true
}

// measure returns the bit rates of the segments the rendition's latest
// playlist lists (RFC 8216 4.3.4.2: AVERAGE-BANDWIDTH is their total size
// over their total duration; BANDWIDTH at least the peak segment bit rate,
// the largest bit rate of a run of consecutive segments lasting 0.5 to 1.5
// target durations) and the media of its current run, probed in the first
// listed segment since its last EXT-X-DISCONTINUITY (a restart may change
// the source). The segment is read without the stream's lock.
func (o *Origin) measure(ctx context.Context, mo object) variantStats {
	var vs variantStats
	st, err := o.stream(ctx, mo.Stream)
	if err != nil {
		return vs
	}
	rs, ok := st.latest[mo.Rendition]
	if !ok {
		st.mu.Unlock()
		return vs
	}
	type seg struct {
		size int64
		dur  time.Duration
	}
	var segs []seg
	run := rs.pl.DiscSeq
	probeKey := ""
	for _, s := range rs.pl.Segments {
		if s.Init {
			continue
		}
		key := segmentKey(mo, s.URI)
		if s.Disc {
			run++
			probeKey = key
		}
		if probeKey == "" {
			probeKey = key
		}
		if f, ok := st.files[key]; ok && s.Duration > 0 {
			segs = append(segs, seg{f.size, s.Duration})
		}
	}
	cached, have := st.probes[mo.Rendition]
	st.mu.Unlock()
	if len(segs) == 0 {
		return vs
	}
	rate := func(size int64, d time.Duration) int64 {
		return int64(math.Ceil(float64(size) * 8 / d.Seconds()))
	}
	var total int64
	var dur time.Duration
	for _, s := range segs {
		total += s.size
		dur += s.dur
	}
	vs.average = rate(total, dur)
	target := rs.pl.Target
	for i := range segs {
		var n int64
		var d time.Duration
		for _, s := range segs[i:] {
			n += s.size
			d += s.dur
			if d > target*3/2 {
				break
			}
			if d*2 >= target {
				vs.peak = max(vs.peak, rate(n, d))
			}
		}
		if segs[i].dur > target*3/2 { // alone too long to be in any such run
			vs.peak = max(vs.peak, rate(segs[i].size, segs[i].dur))
		}
	}
	vs.peak = max(vs.peak, vs.average)

	if !have || cached.run != run {
		cached = probeResult{run: run}
		cached.info, cached.err = o.probe(ctx, probeKey)
		if cached.err != nil {
			o.log.Warn("hls rendition not probed: the master playlist keeps the writer's CODECS, RESOLUTION and FRAME-RATE",
				"stream", mo.Stream, "rendition", mo.Rendition, "segment", probeKey, "err", cached.err)
		}
		if st, err := o.stream(ctx, mo.Stream); err == nil {
			st.probes[mo.Rendition] = cached
			st.mu.Unlock()
		}
	}
	vs.info, vs.probed = cached.info, cached.err == nil
	return vs
}

// probe reads the media of one stored segment (MPEG-TS only: an fMP4
// rendition keeps what the writer declared).
func (o *Origin) probe(ctx context.Context, key string) (mediaInfo, error) {
	if !strings.HasSuffix(key, ".ts") {
		return mediaInfo{}, errors.New("not an MPEG-TS segment")
	}
	rc, _, err := o.p.Backend.Open(ctx, key)
	if err != nil {
		return mediaInfo{}, err
	}
	defer rc.Close()
	return probeTS(io.LimitReader(rc, o.p.MaxSegmentBytes))
}

// contentETag is a strong validator computed from bytes served.
func contentETag(b []byte) string {
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:16]) + `"`
}
