package rtmpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// Status codes sent to refused clients.
const (
	codePublishDenied   = "NetStream.Publish.Unauthorized"
	codePublishBadName  = "NetStream.Publish.BadName"
	codePlayNotFound    = "NetStream.Play.StreamNotFound"
	codePlayFailed      = "NetStream.Play.Failed"
	reasonAuthUnavail   = "authorization unavailable"
	reasonAlreadyInUse  = "stream is already being published"
	reasonStreamUnknown = "stream not found"
)

func (s *Server) publish(c *rtmp.ServerConn, req *rtmp.Request, ss *session, log *slog.Logger) {
	res, err := s.authorize(s.p.Authorize, c, req)
	if err != nil {
		ss.reason, ss.err = "publish authorization failed", err
		_ = c.Reject(codePublishDenied, reasonAuthUnavail)
		return
	}
	if !res.Allow {
		reason := res.Reason
		if reason == "" {
			reason = "publish denied"
		}
		ss.reason = "publish denied: " + reason
		_ = c.Reject(codePublishDenied, reason)
		return
	}
	ss.name = res.Name
	path := req.App + "/" + res.Name
	if !stream.ValidPath(path) {
		ss.reason = "bad stream name"
		_ = c.Reject(codePublishBadName, "invalid stream name")
		s.publishDone(req.App, res.Name, res.Tag)
		return
	}
	pub, err := s.p.Hub.Publish(path, stream.PublisherInfo{
		RemoteAddr: c.RemoteAddr().String(),
		Protocol:   "rtmp",
		Takeover:   res.Takeover,
		Tag:        res.Tag,
		// The connect's flashVer until onMetaData names the encoder.
		Encoder: req.FlashVer,
	})
	if err != nil {
		ss.reason, ss.err = "publish refused by hub", err
		reason := reasonAlreadyInUse
		if !errors.Is(err, stream.ErrAlreadyPublishing) {
			reason = "publish failed"
			// The authorisation marked the stream live; undo it.
			s.publishDone(req.App, res.Name, res.Tag)
		}
		_ = c.Reject(codePublishBadName, reason)
		return
	}
	defer s.publishDone(req.App, res.Name, res.Tag)
	defer pub.Close()
	if err := c.AcceptPublish(); err != nil {
		ss.reason, ss.err = "publish start failed", err
		return
	}
	log.Info("rtmp publish started", "remote", c.RemoteAddr().String(), "app", req.App, "name", res.Name)

	// A takeover or hub shutdown closes the publisher: close the connection
	// so ReadMessage returns.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-pub.Done():
			_ = c.Close()
		case <-stop:
		}
	}()

	ss.reason, ss.err = pumpPublish(c, pub)
}

func (s *Server) publishDone(app, name, tag string) {
	if s.p.PublishDone != nil {
		s.p.PublishDone(app, name, tag)
	}
}

// pumpPublish moves the publisher's messages into the hub until the client
// stops. It returns the closing reason and error (nil on a clean end).
func pumpPublish(c *rtmp.ServerConn, pub *stream.Publisher) (string, error) {
	var ts rtmp.TimestampUnwrapper
	var codec stream.CodecInfo
	for {
		msg, err := c.ReadMessage()
		if err != nil {
			select {
			case <-pub.Done():
				return "publisher replaced or server closing", nil
			default:
			}
			if errors.Is(err, io.EOF) {
				return "unpublished", nil
			}
			if errors.Is(err, rtmp.ErrChunkLimit) {
				return "publisher exceeded chunk limits", err
			}
			return "publisher connection failed", err
		}
		u := toUnit(msg, ts.Unwrap(msg.Timestamp))
		if u == nil {
			continue
		}
		if updateCodec(&codec, u) {
			pub.SetCodecInfo(codec)
		}
		if u.Kind == stream.KindData && u.Header {
			if enc := metadataEncoder(u.Payload); enc != "" {
				pub.SetEncoder(enc)
			}
		}
		if err := pub.Write(u); err != nil {
			return "publisher replaced or server closing", nil
		}
	}
}

var onMetaData = []byte("\x02\x00\x0aonMetaData")

// toUnit turns an RTMP media or data message into a hub unit (nil for
// messages players do not need).
func toUnit(msg rtmp.Message, dts int64) *stream.Unit {
	u := &stream.Unit{DTS: dts, Payload: msg.Payload}
	switch msg.Type {
	case rtmp.TypeVideo:
		u.Kind = stream.KindVideo
		u.Key, u.Header = flv.Classify(flv.TagVideo, msg.Payload)
	case rtmp.TypeAudio:
		u.Kind = stream.KindAudio
		_, u.Header = flv.Classify(flv.TagAudio, msg.Payload)
	case rtmp.TypeDataAMF0:
		u.Kind = stream.KindData
		u.Payload, _ = flv.StripSetDataFrame(msg.Payload)
		// Only onMetaData is stream configuration; other script data
		// (cue points, captions) flows with the media.
		u.Header = bytes.HasPrefix(u.Payload, onMetaData)
		if len(u.Payload) == 0 {
			return nil
		}
	default:
		return nil
	}
	if len(msg.Payload) == 0 {
		return nil
	}
	return u
}

// metadataEncoder is the "encoder" property of an onMetaData body ("" when
// absent): ffmpeg writes "Lavf61.7.100", OBS "obs-output module (libobs
// version 30.1.2)".
func metadataEncoder(payload []byte) string {
	props, err := flv.ParseMetadata(payload)
	if err != nil {
		return ""
	}
	enc, _ := props["encoder"].(string)
	return enc
}

// updateCodec records codec details from header units and the first media
// units; it reports whether ci changed.
func updateCodec(ci *stream.CodecInfo, u *stream.Unit) bool {
	before := *ci
	switch u.Kind {
	case stream.KindVideo:
		v, err := flv.ParseVideoTag(u.Payload)
		if err != nil {
			return false
		}
		if ci.VideoCodec == "" || u.Header {
			ci.VideoCodec = videoCodecName(v)
		}
		if u.Header && v.CodecID == flv.CodecAVC && !v.ExHeader {
			if cfg, err := flv.ParseAVCConfig(v.Data); err == nil {
				if vi, err := cfg.VideoInfo(); err == nil {
					ci.Width, ci.Height = vi.Width, vi.Height
				}
			}
		}
	case stream.KindAudio:
		a, err := flv.ParseAudioTag(u.Payload)
		if err != nil {
			return false
		}
		if ci.AudioCodec == "" || u.Header {
			ci.AudioCodec = audioCodecName(a.SoundFormat)
		}
		if a.SequenceHeader() {
			if ai, err := flv.ParseAudioSpecificConfig(a.Data); err == nil {
				ci.SampleRate, ci.Channels = ai.SampleRate, ai.Channels
			}
		}
	}
	return *ci != before
}

func videoCodecName(v flv.VideoTag) string {
	if v.ExHeader {
		return strings.TrimRight(string(v.FourCC[:]), "\x00 ")
	}
	switch v.CodecID {
	case flv.CodecAVC:
		return "h264"
	case flv.CodecHEVC:
		return "h265"
	case flv.CodecH263:
		return "h263"
	case flv.CodecVP6:
		return "vp6"
	}
	return fmt.Sprintf("flv-video-%d", v.CodecID)
}

func audioCodecName(format uint8) string {
	switch format {
	case flv.SoundAAC:
		return "aac"
	case flv.SoundMP3:
		return "mp3"
	}
	return fmt.Sprintf("flv-audio-%d", format)
}

func (s *Server) play(c *rtmp.ServerConn, req *rtmp.Request, ss *session, log *slog.Logger) {
	ss.name = req.Name
	res, err := s.authorize(s.p.AuthorizePlay, c, req)
	if err != nil {
		ss.reason, ss.err = "play authorization failed", err
		_ = c.Reject(codePlayFailed, reasonAuthUnavail)
		return
	}
	if !res.Allow {
		reason := res.Reason
		if reason == "" {
			reason = "play denied"
		}
		ss.reason = "play denied: " + reason
		_ = c.Reject(codePlayFailed, reason)
		return
	}
	ss.name = res.Name
	rp := s.p.Reader
	rp.WaitTimeout = s.p.PlayWait
	// Write to the player once per video frame (audio rides along) rather
	// than once per unit, by default: fewer, larger writev calls at no
	// added delay for the frames themselves. Params.Reader may ask for
	// more frames per write, or none (negative).
	switch {
	case rp.CoalesceFrames == 0:
		rp.CoalesceFrames = playerCoalesceFrames
	case rp.CoalesceFrames < 0:
		rp.CoalesceFrames = 0
	}
	// Task inputs and thumbnail grabs say so with a proof (Params.IsInternal):
	// they are players of the relay but not viewers of the stream.
	rp.Internal = s.p.IsInternal != nil && s.p.IsInternal(req.App+"/"+res.Name, req.Query)
	// The publisher writes each batch to the socket itself while the player
	// keeps up (see directWriter), from the moment the play has started.
	d := &directWriter{c: c}
	rp.Direct = d.write
	r, err := s.p.Hub.Read(s.ctx, req.App+"/"+res.Name, rp)
	if err != nil {
		if errors.Is(err, stream.ErrNotFound) || errors.Is(err, stream.ErrBadPath) {
			ss.reason = "stream not found"
			_ = c.Reject(codePlayNotFound, reasonStreamUnknown)
			return
		}
		ss.reason, ss.err = "play failed", err
		_ = c.Reject(codePlayFailed, "play failed")
		return
	}
	defer r.Close()
	if err := c.AcceptPlay(); err != nil {
		ss.reason, ss.err = "play start failed", err
		return
	}
	log.Debug("rtmp play started", "remote", c.RemoteAddr().String(), "app", req.App, "name", res.Name)
	ss.reason, ss.err = pumpPlay(s.ctx, c, r, d)
}

// playerCoalesceFrames is how many video frames a player's writes carry
// (see stream.ReaderParams.CoalesceFrames). 300 players at 2 Mbps, CPU s per
// delivered Gbit with the player goroutine writing: per frame 0.141-0.159,
// per two frames 0.105-0.107; with the publisher writing (directWriter):
// per frame 0.119-0.138, per two frames 0.092-0.095. Two frames add a frame
// interval (40 ms at 25 fps) to the worst player lag, which the relay's lag
// target (nginx-rtmp's + 20 ms) does not leave room for. docs/benchmarks.md
// has the runs.
const playerCoalesceFrames = 1

// pumpPlay writes the reader's units to the player until the stream ends,
// the player leaves or falls too far behind.
func pumpPlay(ctx context.Context, c *rtmp.ServerConn, r *stream.Reader, d *directWriter) (string, error) {
	enc := newChunker(c.StreamID(), c.ChunkSize())
	d.start(enc)
	var bufs [][]byte
	for {
		// Next gives up when the player's connection is gone: no extra
		// goroutine per player to watch it.
		units, err := r.NextUntil(ctx, c.Done())
		switch {
		case errors.Is(err, stream.ErrEnded):
			_ = c.PlayEnd()
			return "stream ended", nil
		case errors.Is(err, stream.ErrDropped):
			return "player too slow, dropped", err
		case err != nil:
			select {
			case <-c.Done():
				if cerr := c.Err(); cerr != nil && !errors.Is(cerr, io.EOF) && !errors.Is(cerr, rtmp.ErrClosed) {
					return "player connection failed", cerr
				}
				return "player left", nil
			default:
			}
			return "server closing", nil
		}
		bufs = enc.append(bufs[:0], units)
		if err := c.WriteChunks(bufs...); err != nil {
			if errors.Is(err, rtmp.ErrClosed) {
				return "player left", nil
			}
			return "write to player failed", err
		}
	}
}

// directWriter is a player's stream.ReaderParams.Direct: the publisher's
// goroutine writes the player's batch with one non-blocking writev
// (rtmp.ServerConn.TryWriteChunks) instead of waking the player's
// goroutine to do it. A busy socket, a write in progress or a TLS
// connection leave the batch to the goroutine as before.
type directWriter struct {
	c    *rtmp.ServerConn
	on   atomic.Bool // the play has started: enc is set
	enc  chunker     // set before on; read after it
	bufs [][]byte    // scratch; Direct calls are serialised by the reader
}

// start turns direct writes on once the play has started.
func (d *directWriter) start(enc chunker) {
	d.enc = enc
	d.on.Store(true)
}

func (d *directWriter) write(units []*stream.Unit) (taken, flush bool) {
	if !d.on.Load() {
		return false, false
	}
	d.bufs = d.enc.append(d.bufs[:0], units)
	taken, flush = d.c.TryWriteChunks(d.bufs...)
	clear(d.bufs)
	return taken, flush
}

// chunker encodes units for one player's connection: each unit once per
// stream ID and chunk size, shared by every player with the same ones.
type chunker struct {
	key            stream.EncKey
	sid, chunkSize uint32
}

func newChunker(sid, chunkSize uint32) chunker {
	return chunker{key: stream.EncKey{Format: "rtmp-chunks", A: chunkSize, B: sid}, sid: sid, chunkSize: chunkSize}
}

// append appends the encodings of units to dst.
func (e chunker) append(dst [][]byte, units []*stream.Unit) [][]byte {
	for _, u := range units {
		dst = append(dst, u.Encoded(e.key, func() []byte { return chunk(u, e.sid, e.chunkSize) }))
	}
	return dst
}

// chunk encodes u as one RTMP message on the chunk stream of its kind.
func chunk(u *stream.Unit, sid, chunkSize uint32) []byte {
	var typ uint8
	var csid uint32
	switch u.Kind {
	case stream.KindVideo:
		typ, csid = rtmp.TypeVideo, rtmp.CSIDVideo
	case stream.KindAudio:
		typ, csid = rtmp.TypeAudio, rtmp.CSIDAudio
	default:
		typ, csid = rtmp.TypeDataAMF0, rtmp.CSIDData
	}
	ts := flv.TagTimestamp(u.Kind == stream.KindData && u.Header, u.DTS)
	n := rtmp.ChunkedSize(csid, ts, len(u.Payload), chunkSize)
	return rtmp.AppendChunks(make([]byte, 0, n), csid, sid, typ, ts, u.Payload, chunkSize)
}
