package rtmpserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/sockwrite"
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

// play authorises a play and starts it. It returns the player that now
// runs the connection, or nil when the play was refused or failed (ss says
// why) and the connection is the caller's to close.
func (s *Server) play(c *rtmp.ServerConn, req *rtmp.Request, ss *session, log *slog.Logger) *player {
	ss.name = req.Name
	res, err := s.authorize(s.p.AuthorizePlay, c, req)
	if err != nil {
		ss.reason, ss.err = "play authorization failed", err
		_ = c.Reject(codePlayFailed, reasonAuthUnavail)
		return nil
	}
	if !res.Allow {
		reason := res.Reason
		if reason == "" {
			reason = "play denied"
		}
		ss.reason = "play denied: " + reason
		_ = c.Reject(codePlayFailed, reason)
		return nil
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
	p := &player{s: s, c: c}
	rp.Direct = p.direct
	rp.Wake = p.wake
	r, err := s.p.Hub.Read(s.ctx, req.App+"/"+res.Name, rp)
	if err != nil {
		if errors.Is(err, stream.ErrNotFound) || errors.Is(err, stream.ErrBadPath) {
			ss.reason = "stream not found"
			_ = c.Reject(codePlayNotFound, reasonStreamUnknown)
			return nil
		}
		ss.reason, ss.err = "play failed", err
		_ = c.Reject(codePlayFailed, "play failed")
		return nil
	}
	if err := c.AcceptPlay(); err != nil {
		r.Close()
		ss.reason, ss.err = "play start failed", err
		return nil
	}
	log.Debug("rtmp play started", "remote", c.RemoteAddr().String(), "app", req.App, "name", res.Name)
	p.r = r
	return p
}

// playerCoalesceFrames is how many video frames a player's writes carry
// (see stream.ReaderParams.CoalesceFrames). 300 players at 2 Mbps, CPU s per
// delivered Gbit with the player goroutine writing: per frame 0.141-0.159,
// per two frames 0.105-0.107; with the publisher writing (player.direct):
// per frame 0.119-0.138, per two frames 0.092-0.095. Two frames add a frame
// interval (40 ms at 25 fps) to the worst player lag, which the relay's lag
// target (nginx-rtmp's + 20 ms) does not leave room for. docs/benchmarks.md
// has the runs.
const playerCoalesceFrames = 1

// player is a connection whose play has started. It has no goroutine of
// its own while it keeps up: the publisher writes each batch to its socket
// (direct), and what cannot be written that way (the socket is full, the
// publisher's time for direct writes is spent, the stream ended) has the
// reader start a goroutine that writes until the reader has nothing left,
// then exits (stream.ReaderParams.Wake, run). What the player sends is read
// by the server's Poller; its leaving closes the reader, which wakes run
// too (rtmp.ServerConn.AfterDone).
type player struct {
	s *Server
	c *rtmp.ServerConn
	r *stream.Reader // set before start

	on  atomic.Bool // started: the play's replies are out, enc and cl are set
	enc chunker
	cl  closing
}

// start hands the connection to the player, once the play has started, and
// writes what the reader queued before: the calling goroutine is the
// player's first run.
func (p *player) start(cl closing) {
	p.enc = newChunker(p.c.StreamID(), p.c.ChunkSize())
	p.cl = cl
	p.on.Store(true)
	// AfterDone's f may run inside direct, under the reader's lock:
	// Close takes that lock, so it goes on a goroutine of its own.
	p.c.AfterDone(func() { go p.r.Close() })
	p.run()
}

// wake is the reader's Wake: the player has work again.
func (p *player) wake() { go p.run() }

// run writes the reader's batches until there are none, or the play ends.
func (p *player) run() {
	for {
		select {
		case <-p.c.Done():
			p.end(p.left())
			return
		default:
		}
		units, ok, err := p.r.TryNext()
		if err != nil {
			p.end(p.ended(err))
			return
		}
		if !ok {
			return
		}
		if err := p.write(units); err != nil {
			if errors.Is(err, rtmp.ErrClosed) {
				p.end(p.left())
			} else {
				p.end("write to player failed", err)
			}
			return
		}
	}
}

// left is the closing reason of a connection that has ended.
func (p *player) left() (string, error) {
	if p.s.ctx.Err() != nil {
		return "server closing", nil
	}
	if err := p.c.Err(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, rtmp.ErrClosed) {
		return "player connection failed", err
	}
	return "player left", nil
}

// ended is the closing reason of a reader that has ended with err.
func (p *player) ended(err error) (string, error) {
	switch {
	case errors.Is(err, stream.ErrEnded):
		_ = p.c.PlayEnd()
		return "stream ended", nil
	case errors.Is(err, stream.ErrDropped):
		return "player too slow, dropped", err
	}
	return p.left()
}

// end closes the play and the connection and reports it, once: the reader
// has ended or ends here, and wakes run no more.
func (p *player) end(reason string, err error) {
	p.r.Close()
	p.cl.reason, p.cl.err = reason, err
	p.s.closeConn(p.c, p.cl)
	p.s.active.Add(-1)
	p.s.wg.Done()
}

// direct is the player's stream.ReaderParams.Direct: the publisher's
// goroutine writes the player's batch with one non-blocking writev
// (rtmp.ServerConn.TryWriteChunks) instead of waking run to do it. A busy
// socket, a write in progress or a TLS connection leave the batch to run.
func (p *player) direct(units []*stream.Unit) (taken, flush bool) {
	if !p.on.Load() {
		return false, false
	}
	bufs := sockwrite.GetBufs()
	*bufs = p.enc.append(*bufs, units)
	taken, flush = p.c.TryWriteChunks(*bufs...)
	sockwrite.PutBufs(bufs)
	return taken, flush
}

// write writes units, waiting for room in the socket.
func (p *player) write(units []*stream.Unit) error {
	bufs := sockwrite.GetBufs()
	defer sockwrite.PutBufs(bufs)
	*bufs = p.enc.append(*bufs, units)
	return p.c.WriteChunks(*bufs...)
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
