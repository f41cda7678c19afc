package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
	"github.com/portier/portier/portier/streamurl"
)

// streamView is a stream as the API shows it. Key (and Ingest, which embeds
// it) is present only on create, on rotate-key and on GET of one stream by
// its owner; everyone else sees KeyHint (the first 4 characters).
type streamView struct {
	ID            int64             `json:"id"`
	Name          string            `json:"name"`
	App           string            `json:"app"`
	Owner         string            `json:"owner"`
	OwnerID       int64             `json:"owner_id"`
	Enabled       bool              `json:"enabled"`
	AllowTakeover bool              `json:"allow_takeover"`
	HLSPublic     bool              `json:"hls_public"`
	Live          bool              `json:"live"`
	PublishCount  int64             `json:"publish_count"`
	LastPublishAt *time.Time        `json:"last_publish_at"`
	CodecInfo     models.RawJSON    `json:"codec_info"`
	Bitrate       int64             `json:"bitrate"`
	Key           string            `json:"key,omitempty"`
	KeyHint       string            `json:"key_hint"`
	Ingest        *streamurl.Ingest `json:"ingest,omitempty"`
	Play          streamurl.Play    `json:"play"`
	Origins       []originView      `json:"origins,omitempty"` // GET of one stream only
	// Stats are the live statistics (stats.go); null while offline.
	Stats     *streamStatsView `json:"stats"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// originView is an origin node holding the stream's publish now.
type originView struct {
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
}

// viewStream is st as the API shows it; the key and its ingest URLs only
// with showKey.
func (s *Server) viewStream(c *gin.Context, st *models.Stream, showKey bool) streamView {
	v := streamView{
		ID: st.ID, Name: st.Name, App: st.Application.Name, Owner: st.Owner.Username, OwnerID: st.OwnerID,
		Enabled: st.Enabled, AllowTakeover: st.AllowTakeover, HLSPublic: st.HLSPublic, Live: st.Live, PublishCount: st.PublishCount,
		LastPublishAt: st.LastPublishAt, CodecInfo: st.CodecInfo, Bitrate: st.Bitrate,
		Play:      s.urls.Play(c.Request, st.Application.Name, st.Name),
		KeyHint:   streamurl.KeyHint(st.PublishKey),
		CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt,
	}
	if showKey {
		v.Key = st.PublishKey
		in := s.urls.Ingest(c.Request, st.Application.Name, st.Name, st.PublishKey)
		v.Ingest = &in
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
	st, err := s.auth.Stream(c.Request.Context(), auth.PrincipalOf(c), id)
	if errors.Is(err, auth.ErrOtherOwner) {
		return nil, httperr.NotFound("stream")
	}
	return st, err
}

func (s *Server) apiListStreams(c *gin.Context) {
	pg, err := paging.Params(c)
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
		s.fail(c, httperr.Invalid("live", "live must be true or false"))
		return
	}
	p := auth.PrincipalOf(c)
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
	st, err := s.core.CreateStream(c.Request.Context(), auth.Actor(c), req.App, req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	st.Owner = *auth.PrincipalOf(c).User
	c.JSON(http.StatusCreated, s.viewStream(c, st, true))
}

func (s *Server) apiGetStream(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := s.viewStream(c, st, auth.PrincipalOf(c).Owns(st))
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
	up, err := s.core.UpdateStream(c.Request.Context(), auth.Actor(c), st, models.StreamUpdate{Name: req.Name, Enabled: req.Enabled, AllowTakeover: req.AllowTakeover, HLSPublic: req.HLSPublic})
	if err != nil {
		s.fail(c, err)
		return
	}
	v := s.viewStream(c, up, auth.PrincipalOf(c).Owns(up))
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
	up, err := s.core.RotateKey(c.Request.Context(), auth.Actor(c), st)
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

// kickView is the answer to a kick: the publishes the relays were told
// to end.
type kickView struct {
	StreamID int64           `json:"stream_id"`
	Ended    []kickedPublish `json:"ended"`
	Message  string          `json:"message"`
}

type kickedPublish struct {
	Node      string `json:"node"`
	PublishID int64  `json:"publish_id"`
}

// apiKickPublisher ends the stream's current publish (202: the relays end
// it with their next heartbeat answer). 409 when the stream is not live.
func (s *Server) apiKickPublisher(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	kicked, err := s.core.KickPublisher(c.Request.Context(), auth.Actor(c), st)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := kickView{StreamID: st.ID, Ended: make([]kickedPublish, 0, len(kicked)),
		Message: "the relays end the publish with their next heartbeat; the key stays valid and the encoder may publish again"}
	for _, o := range kicked {
		v.Ended = append(v.Ended, kickedPublish{Node: o.NodeName, PublishID: o.PublishID})
	}
	c.JSON(http.StatusAccepted, v)
}

func (s *Server) apiDeleteStream(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.core.DeleteStream(c.Request.Context(), auth.Actor(c), st)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
