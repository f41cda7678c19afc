// Package streamurl builds the public URLs of a stream that the REST API
// and the web UI show: where encoders publish (RTMP, OBS server and key,
// an ffmpeg command) and where players play (RTMP, RTSP, HTTP-FLV).
package streamurl

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// Params are the public addresses of the relays.
type Params struct {
	// PublicHost is the host name encoders and players use. Empty: the
	// host of the request.
	PublicHost string
	// RTMPPort is the public RTMP port (default 1935).
	RTMPPort int
	// RTSPPort is the public RTSP port (0: no RTSP URLs).
	RTSPPort int
	// PlayHTTPBase is the base URL of HTTP-FLV playback. Empty: the
	// address the request reached (right for `portier run`, which serves
	// HTTP-FLV there).
	PlayHTTPBase string
}

// Builder builds the URLs of streams from Params and the request.
type Builder struct{ p Params }

// New builds a Builder.
func New(p Params) *Builder {
	if p.RTMPPort == 0 {
		p.RTMPPort = 1935
	}
	return &Builder{p: p}
}

// Play is where players play a stream (the REST API's "play").
type Play struct {
	RTMP string `json:"rtmp"`
	FLV  string `json:"flv"`
	// RTSP is there when the relays serve RTSP (Params.RTSPPort).
	RTSP string `json:"rtsp,omitempty"`
	// HLS is the viewer URL of the master playlist (GET of one stream,
	// while it has an enabled HLS task config; the control plane's HLS
	// mount fills it in).
	HLS string `json:"hls,omitempty"`
}

// Ingest is where an encoder publishes a stream (the REST API's "ingest").
type Ingest struct {
	RTMPURL      string `json:"rtmp_url"`
	OBSServer    string `json:"obs_server"`
	OBSStreamKey string `json:"obs_stream_key"`
	FFmpeg       string `json:"ffmpeg"`
}

// Host is the host name for ingest and play URLs.
func (b *Builder) Host(r *http.Request) string {
	if b.p.PublicHost != "" {
		return b.p.PublicHost
	}
	h := r.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return h
}

// RTMPBase is rtmp://HOST:PORT/APP, the OBS "server" of app.
func (b *Builder) RTMPBase(r *http.Request, app string) string {
	return "rtmp://" + net.JoinHostPort(b.Host(r), strconv.Itoa(b.p.RTMPPort)) + "/" + app
}

// Play is where players play app/name (HLS left empty).
func (b *Builder) Play(r *http.Request, app, name string) Play {
	flvBase := b.p.PlayHTTPBase
	if flvBase == "" {
		// Without a configured base, HTTP-FLV is served where the API is
		// (`portier run` mounts the relay on the control plane's address).
		flvBase = "http://" + r.Host
		if b.p.PublicHost != "" {
			flvBase = "http://" + b.p.PublicHost
			if _, port, err := net.SplitHostPort(r.Host); err == nil {
				flvBase = "http://" + net.JoinHostPort(b.p.PublicHost, port)
			}
		}
	}
	p := Play{
		RTMP: b.RTMPBase(r, app) + "/" + name,
		FLV:  flvBase + "/" + url.PathEscape(app) + "/" + url.PathEscape(name) + ".flv",
	}
	if b.p.RTSPPort > 0 {
		p.RTSP = "rtsp://" + net.JoinHostPort(b.Host(r), strconv.Itoa(b.p.RTSPPort)) + "/" + app + "/" + name
	}
	return p
}

// Ingest is where an encoder publishes app/name with key.
func (b *Builder) Ingest(r *http.Request, app, name, key string) Ingest {
	base := b.RTMPBase(r, app)
	pub := base + "/" + name + "?key=" + url.QueryEscape(key)
	return Ingest{
		RTMPURL:      pub,
		OBSServer:    base,
		OBSStreamKey: key, // the key alone as the stream name (contract)
		FFmpeg: fmt.Sprintf("ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -tune zerolatency -g 50 "+
			"-c:a aac -b:a 128k -f flv '%s'", pub),
	}
}

// KeyHint is what is shown of a publish key to those who may not see it:
// its first 4 characters.
func KeyHint(key string) string {
	if len(key) >= 4 {
		return key[:4] + "…"
	}
	return ""
}
