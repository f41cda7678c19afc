package rtmp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmp/amf0"
)

// Interoperability with real peers: ffmpeg publishes to ServerConn;
// ffprobe, ffmpeg and rtmpdump play from it.

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required for this test (installed on the build machines): %v", name, err)
	}
	return p
}

// runTool runs a command bounded by timeout and returns its combined output
// and exit error. The process is killed by the context on timeout.
func runTool(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, lookTool(t, name), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func ffmpegPublishArgs(url string, seconds string, extra ...string) []string {
	args := []string{"-hide_banner", "-loglevel", "info",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", seconds,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
		"-c:a", "aac"}
	args = append(args, extra...)
	return append(args, "-f", "flv", url)
}

type capture struct {
	mu   sync.Mutex
	req  *Request
	msgs []Message
	err  error
	done chan struct{}
}

// capturePublish runs ffmpeg publishing to a ServerConn loop and returns
// what the server received.
func capturePublish(t *testing.T, extra ...string) *capture {
	t.Helper()
	cp := &capture{done: make(chan struct{})}
	srv := newTestServer(t, ServerConfig{}, func(c *ServerConn, req *Request) {
		defer close(cp.done)
		cp.req = req
		if err := c.AcceptPublish(); err != nil {
			cp.err = err
			return
		}
		for {
			m, err := c.ReadMessage()
			if err != nil {
				cp.err = err
				return
			}
			cp.msgs = append(cp.msgs, m)
		}
	})
	out, err := runTool(t, 60*time.Second, "ffmpeg", ffmpegPublishArgs(srv.url+"/live/test?key=abc", "2", extra...)...)
	if err != nil {
		t.Fatalf("ffmpeg publish: %v\n%s", err, out)
	}
	select {
	case <-cp.done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not see the end of the publish")
	}
	return cp
}

func TestFFmpegPublish(t *testing.T) {
	cp := capturePublish(t)
	if cp.err != io.EOF {
		t.Fatalf("publish ended with %v, want io.EOF (FCUnpublish/deleteStream)", cp.err)
	}
	r := cp.req
	if r.Kind != KindPublish || r.App != "live" || r.Name != "test" || r.Query.Get("key") != "abc" {
		t.Fatalf("request %+v", r)
	}
	var keyframes, aac, aacHeader, avcHeader, metadata int
	var lastVideo uint32
	for _, m := range cp.msgs {
		switch m.Type {
		case TypeVideo:
			if len(m.Payload) < 5 || m.Payload[0]&0x0f != 7 {
				t.Fatalf("video message is not AVC: % x", m.Payload[:min(5, len(m.Payload))])
			}
			if m.Payload[1] == 0 {
				avcHeader++
			} else if m.Payload[0]>>4 == 1 {
				keyframes++
			}
			if m.Timestamp < lastVideo {
				t.Fatalf("video timestamps go backwards: %d after %d", m.Timestamp, lastVideo)
			}
			lastVideo = m.Timestamp
		case TypeAudio:
			if m.Payload[0]>>4 != 10 {
				t.Fatalf("audio message is not AAC: %x", m.Payload[0])
			}
			if m.Payload[1] == 0 {
				aacHeader++
			} else {
				aac++
			}
		case TypeDataAMF0:
			vals, err := amf0.DecodeAll(m.Payload)
			if err != nil {
				t.Fatalf("data message: %v", err)
			}
			if len(vals) >= 3 && vals[0] == "@setDataFrame" && vals[1] == "onMetaData" {
				md, _ := vals[2].(amf0.ECMAArray)
				if md["width"] != 320.0 || md["height"] != 240.0 {
					t.Fatalf("onMetaData %v", md)
				}
				metadata++
			}
		}
	}
	t.Logf("%d messages: %d keyframes, %d AAC frames, last video ts %d", len(cp.msgs), keyframes, aac, lastVideo)
	if avcHeader != 1 || aacHeader != 1 || metadata != 1 || keyframes < 2 || aac < 50 || lastVideo < 1800 {
		t.Fatalf("avc headers %d, aac headers %d, metadata %d, keyframes %d, aac %d, last ts %d",
			avcHeader, aacHeader, metadata, keyframes, aac, lastVideo)
	}
}

func TestFFmpegPublishRejected(t *testing.T) {
	srv := newTestServer(t, ServerConfig{}, func(c *ServerConn, req *Request) {
		c.Reject("NetStream.Publish.BadName", "wrong stream key for live/test")
	})
	out, err := runTool(t, 60*time.Second, "ffmpeg", ffmpegPublishArgs(srv.url+"/live/test?key=bad", "2")...)
	if err == nil {
		t.Fatalf("ffmpeg exited 0 after a rejected publish:\n%s", out)
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("ffmpeg: %v", err)
	}
	if !strings.Contains(out, "wrong stream key for live/test") {
		t.Fatalf("ffmpeg did not print the reason:\n%s", out)
	}
}

// replayServer serves captured messages to every player through shared
// pre-chunked bytes, then ends the stream.
func replayServer(t *testing.T, msgs []Message) *testServer {
	var once sync.Once
	var chunks [][]byte
	return newTestServer(t, ServerConfig{}, func(c *ServerConn, req *Request) {
		if req.Kind != KindPlay || req.Name != "test" {
			c.Reject("NetStream.Play.StreamNotFound", "no stream "+req.Name)
			return
		}
		once.Do(func() {
			for _, m := range msgs {
				payload := m.Payload
				if m.Type == TypeDataAMF0 {
					// Players expect onMetaData without the @setDataFrame wrapper.
					if vals, err := amf0.DecodeAll(payload); err == nil && len(vals) == 3 && vals[0] == "@setDataFrame" {
						payload, _ = amf0.EncodeAll(nil, vals[1:]...)
					}
				}
				chunks = append(chunks, AppendChunks(nil, m.CSID(), c.StreamID(), m.Type, m.Timestamp, payload, c.ChunkSize()))
			}
		})
		if err := c.AcceptPlay(); err != nil {
			return
		}
		for i := 0; i < len(chunks); i += 16 {
			if err := c.WriteChunks(chunks[i:min(i+16, len(chunks))]...); err != nil {
				return
			}
		}
		c.PlayEnd()
	})
}

func TestFFprobeAndFFmpegPlay(t *testing.T) {
	cp := capturePublish(t)
	srv := replayServer(t, cp.msgs)
	out, err := runTool(t, 60*time.Second, "ffprobe", "-v", "error", "-show_streams", "-of", "json", srv.url+"/live/test")
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var probe struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &probe); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	codecs := map[string]bool{}
	for _, s := range probe.Streams {
		codecs[s.CodecName] = true
	}
	if !codecs["h264"] || !codecs["aac"] {
		t.Fatalf("ffprobe streams %+v", probe.Streams)
	}
	// ffmpeg plays the whole stream and counts its frames.
	out, err = runTool(t, 60*time.Second, "ffmpeg", "-hide_banner", "-i", srv.url+"/live/test", "-c", "copy", "-f", "null", "-")
	if err != nil {
		t.Fatalf("ffmpeg play: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Video: h264") || !strings.Contains(out, "Audio: aac") {
		t.Fatalf("ffmpeg play output:\n%s", out)
	}
	// A missing stream is reported by ffmpeg.
	out, err = runTool(t, 60*time.Second, "ffprobe", "-v", "error", srv.url+"/live/missing")
	if err == nil || !strings.Contains(out, "no stream missing") {
		t.Fatalf("ffprobe of a missing stream: %v\n%s", err, out)
	}
}

func TestRTMPDumpPlay(t *testing.T) {
	cp := capturePublish(t)
	srv := replayServer(t, cp.msgs)
	file := filepath.Join(t.TempDir(), "out.flv")
	out, err := runTool(t, 60*time.Second, "rtmpdump", "-r", srv.url+"/live/test", "-v", "-o", file)
	if err != nil {
		t.Fatalf("rtmpdump: %v\n%s", err, out)
	}
	out, err = runTool(t, 60*time.Second, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", file)
	if err != nil || !strings.Contains(out, "h264") || !strings.Contains(out, "aac") {
		t.Fatalf("ffprobe of rtmpdump's file: %v\n%s", err, out)
	}
}

// TestFFmpegPublishExtendedTimestamps makes ffmpeg publish with timestamps
// that cross 0xFFFFFF (about 4.66 hours into a stream) so its chunks carry
// extended timestamps, including on type-3 continuation chunks, then plays
// the capture back to ffprobe.
func TestFFmpegPublishExtendedTimestamps(t *testing.T) {
	cp := capturePublish(t, "-output_ts_offset", "16777")
	if cp.err != io.EOF {
		t.Fatalf("publish ended with %v", cp.err)
	}
	var below, above, bigFrames int
	var last uint32
	for _, m := range cp.msgs {
		if m.Type != TypeVideo {
			continue
		}
		v, err := flv.ParseVideoTag(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if !v.SequenceHeader() && v.PacketType == flv.PacketNALU {
			// A misparsed continuation chunk would corrupt the NAL unit framing.
			if _, err := flv.SplitAVCC(v.Data, 4); err != nil {
				t.Fatalf("video at %#x: %v", m.Timestamp, err)
			}
			if len(m.Payload) > DefaultChunkSize && m.Timestamp >= 0xffffff {
				bigFrames++
			}
		}
		if m.Timestamp < last {
			t.Fatalf("timestamp %#x after %#x", m.Timestamp, last)
		}
		last = m.Timestamp
		if m.Timestamp < 0xffffff {
			below++
		} else {
			above++
		}
	}
	if below == 0 || above == 0 || bigFrames == 0 {
		t.Fatalf("%d video messages below 0xFFFFFF, %d above, %d multi-chunk above", below, above, bigFrames)
	}
	srv := replayServer(t, cp.msgs)
	out, err := runTool(t, 60*time.Second, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", srv.url+"/live/test")
	if err != nil || !strings.Contains(out, "h264") || !strings.Contains(out, "aac") {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
}
