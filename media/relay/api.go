package relay

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/media/rtsp"
	"github.com/portier/portier/media/stream"
)

// StreamStatus is one stream as the relay's API shows it.
type StreamStatus struct {
	Path       string           `json:"path"`
	App        string           `json:"app"`
	Name       string           `json:"name"`
	Live       bool             `json:"live"`
	Codec      stream.CodecInfo `json:"codec"`
	Resolution string           `json:"resolution,omitempty"` // "640x360"
	FPS        float64          `json:"fps,omitempty"`        // measured from the video timestamps
	BitrateIn  uint64           `json:"bitrate"`              // bits per second
	Publisher  string           `json:"publisher_address,omitempty"`
	Protocol   string           `json:"publisher_protocol,omitempty"`
	Since      time.Time        `json:"since,omitzero"`
	Players    int              `json:"players"`
	// InternalPlayers of Players are the system's own (task inputs,
	// thumbnail grabs: see controlclient.InternalPlayQuery).
	InternalPlayers int    `json:"internal_players"`
	Upstream        string `json:"upstream_origin,omitempty"` // edges: origin pulled now
	Failovers       uint64 `json:"failovers,omitempty"`
	BytesIn         uint64 `json:"bytes_in"`
	BytesOut        uint64 `json:"bytes_out"`
	Skips           uint64 `json:"player_skips"`
	Drops           uint64 `json:"player_drops"`
	// RTP lists the RTP flows of an RTSP publish with their statistics,
	// per SSRC, measured where packets arrive (packets, loss, duplicates,
	// reordering, late-discarded, jitter).
	RTP []rtp.Flow `json:"rtp,omitempty"`
	// RTSPPlayers lists the stream's RTSP players with what was sent to
	// them and what their RTCP receiver reports say.
	RTSPPlayers []rtsp.PlayerStats `json:"rtsp_players,omitempty"`
}

// Streams lists the relay's streams, sorted by path.
func (r *Relay) Streams() []StreamStatus {
	infos := r.streamInfos()
	flows := map[string][]rtp.Flow{}
	for _, f := range r.servers.rtpFlows() {
		flows[f.Path] = append(flows[f.Path], f)
	}
	players := map[string][]rtsp.PlayerStats{}
	for _, p := range r.servers.rtspPlayers() {
		players[p.Path] = append(players[p.Path], p)
	}
	out := make([]StreamStatus, 0, len(infos))
	for _, si := range infos {
		app, name, _ := strings.Cut(si.Path, "/")
		st := StreamStatus{Path: si.Path, App: app, Name: name, Live: si.Live, Codec: si.Codec,
			BitrateIn: si.BitrateIn, FPS: si.FPS, Players: si.Readers, InternalPlayers: si.InternalReaders, BytesIn: si.BytesIn, BytesOut: si.BytesOut,
			Skips: si.Skips, Drops: si.Drops}
		if si.Live {
			st.Publisher, st.Protocol, st.Since = si.Publisher.RemoteAddr, si.Publisher.Protocol, si.Publisher.Start
		}
		if si.Codec.Width > 0 && si.Codec.Height > 0 {
			st.Resolution = fmt.Sprintf("%dx%d", si.Codec.Width, si.Codec.Height)
		}
		st.RTP = flows[si.Path]
		st.RTSPPlayers = players[si.Path]
		if r.edge != nil {
			if up, ok := r.edge.Upstream(si.Path); ok {
				st.Upstream, st.Failovers = up.Origin, up.Failovers
			}
		}
		out = append(out, st)
	}
	return out
}

// HTTPHandler serves the relay's HTTP routes: HTTP-FLV play at
// /{app}/{name}.flv, the relay API at /api/v1/streams, Prometheus metrics at
// /metrics and the probes /healthz and /readyz. `portier run` mounts it
// (the FLV and API routes) under the control plane's server.
func (r *Relay) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "role": r.p.Role, "node": r.p.Name})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, why := r.Ready()
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]any{"ready": ready, "reason": why})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.Registry(), promhttp.HandlerOpts{}))
	auth := r.p.APIAuth
	if auth == nil {
		auth = r.requireClusterToken
	}
	api := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, auth(h)) }
	api("GET /api/v1/streams", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"node": r.p.Name, "role": r.p.Role, "streams": r.Streams()})
	})
	api("GET /api/v1/streams/{app}/{name}", func(w http.ResponseWriter, req *http.Request) {
		path := req.PathValue("app") + "/" + req.PathValue("name")
		for _, st := range r.Streams() {
			if st.Path == path {
				writeJSON(w, http.StatusOK, st)
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no stream %q on this relay", path))
	})
	api("GET /api/v1/rtsp-pulls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"node": r.p.Name, "pulls": r.RTSPPulls()})
	})
	// The whole set of pulls, replaced per path (see SetRTSPPulls): what
	// the control plane will send an origin.
	api("PUT /api/v1/rtsp-pulls", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Pulls []RTSPPull `json:"pulls"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "body: want {\"pulls\": [{\"path\", \"key\", \"url\", \"transport\"}]}: "+err.Error())
			return
		}
		if err := r.SetRTSPPulls(body.Pulls); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrPullsNotOrigin) {
				status = http.StatusConflict
			}
			writeError(w, status, "invalid", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"node": r.p.Name, "pulls": r.RTSPPulls()})
	})
	mux.Handle("GET /{app}/{file}", r.flvHandler())
	return mux
}

// requireClusterToken lets through requests that carry the cluster token
// as Authorization: Bearer.
func (r *Relay) requireClusterToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		scheme, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		if r.p.ClusterToken != "" && strings.EqualFold(scheme, "Bearer") &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(r.p.ClusterToken)) == 1 {
			next.ServeHTTP(w, req)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="portier-relay"`)
		msg := "the relay API needs the cluster token: send Authorization: Bearer TOKEN"
		if r.p.ClusterToken == "" {
			msg = "the relay API is closed: this relay has no --cluster-token"
		}
		writeError(w, http.StatusUnauthorized, "unauthorized", msg)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// Collector is the relay's Prometheus collector, for a program that embeds
// the relay and serves one /metrics for everything (`portier run`).
func (r *Relay) Collector() prometheus.Collector { return r.metrics }

// FLVHandler serves only HTTP-FLV play (/{app}/{name}.flv), for mounting
// under another server's mux (`portier run` mounts it at /live/).
func (r *Relay) FLVHandler() http.Handler { return r.flvHandler() }
