package portier

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
)

// streamView is a stream as the API shows it. Key (and Ingest, which embeds
// it) is present only on create, on rotate-key and on GET of one stream by
// its owner; everyone else sees KeyHint (the first 4 characters).
type streamView struct {
	ID            int64          `json:"id"`
	Name          string         `json:"name"`
	App           string         `json:"app"`
	Owner         string         `json:"owner"`
	OwnerID       int64          `json:"owner_id"`
	Enabled       bool           `json:"enabled"`
	AllowTakeover bool           `json:"allow_takeover"`
	HLSPublic     bool           `json:"hls_public"`
	Live          bool           `json:"live"`
	PublishCount  int64          `json:"publish_count"`
	LastPublishAt *time.Time     `json:"last_publish_at"`
	CodecInfo     models.RawJSON `json:"codec_info"`
	Bitrate       int64          `json:"bitrate"`
	Key           string         `json:"key,omitempty"`
	KeyHint       string         `json:"key_hint"`
	Ingest        *ingestView    `json:"ingest,omitempty"`
	Play          playView       `json:"play"`
	Origins       []originView   `json:"origins,omitempty"` // GET of one stream only
	// Stats are the live statistics (stats.go); null while offline.
	Stats     *streamStatsView `json:"stats"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

type ingestView struct {
	RTMPURL      string `json:"rtmp_url"`
	OBSServer    string `json:"obs_server"`
	OBSStreamKey string `json:"obs_stream_key"`
	FFmpeg       string `json:"ffmpeg"`
}

// originView is an origin node holding the stream's publish now.
type originView struct {
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
}

type playView struct {
	RTMP string `json:"rtmp"`
	FLV  string `json:"flv"`
	// RTSP is there when the relays serve RTSP (Params.RTSPPort).
	RTSP string `json:"rtsp,omitempty"`
	// HLS is the viewer URL of the master playlist (GET of one stream,
	// while it has an enabled HLS task config; see hlsmount.go).
	HLS string `json:"hls,omitempty"`
}

// publicHost is the host name for ingest and play URLs.
func (s *Server) publicHost(c *gin.Context) string {
	if s.p.PublicHost != "" {
		return s.p.PublicHost
	}
	h := c.Request.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return h
}

func (s *Server) viewStream(c *gin.Context, st *models.Stream, showKey bool) streamView {
	host := s.publicHost(c)
	rtmpBase := "rtmp://" + net.JoinHostPort(host, strconv.Itoa(s.p.RTMPPort)) + "/" + st.Application.Name
	flvBase := s.p.PlayHTTPBase
	if flvBase == "" {
		// Without a configured base, HTTP-FLV is served where the API is
		// (`portier run` mounts the relay on the control plane's address).
		flvBase = "http://" + c.Request.Host
		if s.p.PublicHost != "" {
			flvBase = "http://" + s.p.PublicHost
			if _, port, err := net.SplitHostPort(c.Request.Host); err == nil {
				flvBase = "http://" + net.JoinHostPort(s.p.PublicHost, port)
			}
		}
	}
	v := streamView{
		ID: st.ID, Name: st.Name, App: st.Application.Name, Owner: st.Owner.Username, OwnerID: st.OwnerID,
		Enabled: st.Enabled, AllowTakeover: st.AllowTakeover, HLSPublic: st.HLSPublic, Live: st.Live, PublishCount: st.PublishCount,
		LastPublishAt: st.LastPublishAt, CodecInfo: st.CodecInfo, Bitrate: st.Bitrate,
		Play: playView{
			RTMP: rtmpBase + "/" + st.Name,
			FLV:  flvBase + "/" + url.PathEscape(st.Application.Name) + "/" + url.PathEscape(st.Name) + ".flv",
		},
		CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt,
	}
	if s.p.RTSPPort > 0 {
		v.Play.RTSP = "rtsp://" + net.JoinHostPort(host, strconv.Itoa(s.p.RTSPPort)) + "/" + st.Application.Name + "/" + st.Name
	}
	if len(st.PublishKey) >= 4 {
		v.KeyHint = st.PublishKey[:4] + "…"
	}
	if showKey {
		v.Key = st.PublishKey
		pub := rtmpBase + "/" + st.Name + "?key=" + url.QueryEscape(st.PublishKey)
		v.Ingest = &ingestView{
			RTMPURL:      pub,
			OBSServer:    rtmpBase,
			OBSStreamKey: st.PublishKey, // the key alone as the stream name (contract)
			FFmpeg: fmt.Sprintf("ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -tune zerolatency -g 50 "+
				"-c:a aac -b:a 128k -f flv '%s'", pub),
		}
	}
	return v
}

// loadStream loads stream :id for the principal. An operator asking for
// another operator's stream gets 404, exactly as for a missing stream, so
// ids leak nothing.
func (s *Server) loadStream(c *gin.Context) (*models.Stream, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	st, err := s.p.Store.StreamByID(c.Request.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, errNotFound("stream")
	}
	if err != nil {
		return nil, err
	}
	p := s.principal(c)
	if !p.SeesAllStreams() && !p.Owns(st) {
		return nil, errNotFound("stream")
	}
	return st, nil
}

func (s *Server) apiListStreams(c *gin.Context) {
	pg, err := pageParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := models.StreamFilter{Limit: pg.Limit, Offset: pg.Offset, App: c.Query("app")}
	if f.App != "" && !models.ValidName(f.App) {
		s.fail(c, models.NameError("app"))
		return
	}
	switch c.Query("live") {
	case "":
	case "true":
		t := true
		f.Live = &t
	case "false":
		t := false
		f.Live = &t
	default:
		s.fail(c, errInvalid("live", "live must be true or false"))
		return
	}
	p := s.principal(c)
	if !p.SeesAllStreams() {
		f.OwnerID = p.User.ID
	}
	list, total, err := s.p.Store.ListStreams(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]streamView, len(list))
	ptrs := make([]*streamView, len(list))
	for i := range list {
		out[i] = s.viewStream(c, &list[i], false)
		ptrs[i] = &out[i]
	}
	if err := s.attachStats(c.Request.Context(), ptrs...); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(out, total, pg, len(out)))
}

type createStreamReq struct {
	Name string `json:"name"`
	App  string `json:"app"`
}

func (s *Server) apiCreateStream(c *gin.Context) {
	var req createStreamReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.core.CreateStream(c.Request.Context(), s.actor(c), req.App, req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	st.Owner = *s.principal(c).User
	c.JSON(http.StatusCreated, s.viewStream(c, st, true))
}

func (s *Server) apiGetStream(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := s.viewStream(c, st, s.principal(c).Owns(st))
	v.Play.HLS = s.hlsPlayURL(c, st)
	origins, err := s.p.Store.StreamOrigins(c.Request.Context(), st.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, o := range origins {
		v.Origins = append(v.Origins, originView{Node: o.NodeName, Since: o.Since})
	}
	if err := s.attachStats(c.Request.Context(), &v); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

type patchStreamReq struct {
	Name          *string `json:"name"`
	Enabled       *bool   `json:"enabled"`
	AllowTakeover *bool   `json:"allow_takeover"`
	HLSPublic     *bool   `json:"hls_public"`
}

func (s *Server) apiPatchStream(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req patchStreamReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	up, err := s.core.UpdateStream(c.Request.Context(), s.actor(c), st, models.StreamUpdate{Name: req.Name, Enabled: req.Enabled, AllowTakeover: req.AllowTakeover, HLSPublic: req.HLSPublic})
	if err != nil {
		s.fail(c, err)
		return
	}
	v := s.viewStream(c, up, s.principal(c).Owns(up))
	if err := s.attachStats(c.Request.Context(), &v); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) apiRotateKey(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	up, err := s.core.RotateKey(c.Request.Context(), s.actor(c), st)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := s.viewStream(c, up, true)
	if err := s.attachStats(c.Request.Context(), &v); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) apiDeleteStream(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.core.DeleteStream(c.Request.Context(), s.actor(c), st)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
