package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/recordings"
	"github.com/portier/portier/portier/streamurl"
	"github.com/portier/portier/web/i18n"
	"github.com/portier/portier/web/views"
)

// uiLoadStream loads stream :id for the signed-in user with the API's rules
// (Principal.SeesAllStreams / Owns). Unlike the API, which hides other
// operators' streams as 404, the UI says plainly that the stream is not
// theirs (403), since ids are visible in links anyway.
func (s *Server) uiLoadStream(c *gin.Context) (*models.Stream, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, httperr.NotFound("stream")
	}
	st, err := s.auth.Stream(rctx(c), auth.PrincipalOf(c), id)
	if errors.Is(err, auth.ErrOtherOwner) {
		return nil, httperr.Forbidden("this stream belongs to another operator")
	}
	return st, err
}

// uiCanEdit reports whether the principal may change st: writers (not
// viewers) on streams they can see; operators see only their own.
func (s *Server) uiCanEdit(c *gin.Context, st *models.Stream) bool {
	p := auth.PrincipalOf(c)
	return p.CanWrite() && (p.SeesAllStreams() || p.Owns(st))
}

// uiEditableStream loads a stream the principal may change, or renders the
// refusal and returns nil.
func (s *Server) uiEditableStream(c *gin.Context) *models.Stream {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return nil
	}
	if !s.uiCanEdit(c, st) {
		s.uiError(c, http.StatusForbidden, errors.New("viewers have read-only access"))
		return nil
	}
	return st
}

// codecFacts is a live stream's stored codec document (models.LiveCodecInfo),
// with Viewers nil until the first heartbeat has counted them.
type codecFacts struct {
	models.StreamCodec
	Publisher *models.StreamPublisher `json:"publisher"`
	Viewers   *int                    `json:"viewers"`
}

// gopText is a GOP as the stream page shows it: "2.0 s (50 frames)", with
// a decimal comma in German ("" before the origin measured one).
func gopText(l i18n.Lang, millis int64, frames int) string {
	if millis <= 0 {
		return ""
	}
	sec := strconv.FormatFloat(float64(millis)/1000, 'f', 1, 64)
	if l == i18n.DE {
		sec = strings.Replace(sec, ".", ",", 1)
	}
	return l.T("%s s (%d frames)", sec, frames)
}

// publisherText is the publisher's address with its protocol:
// "192.0.2.7:50312 (RTMP)".
func publisherText(p *models.StreamPublisher) string {
	if p == nil || p.Addr == "" {
		return ""
	}
	if p.Protocol == "" {
		return p.Addr
	}
	return p.Addr + " (" + strings.ToUpper(p.Protocol) + ")"
}

func formatBitrate(bps int64) string {
	switch {
	case bps <= 0:
		return ""
	case bps >= 1_000_000:
		return fmt.Sprintf("%.1f Mbit/s", float64(bps)/1e6)
	default:
		return fmt.Sprintf("%d kbit/s", bps/1000)
	}
}

func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%dh %02dm %02ds", h, m, sec)
	}
	if m > 0 {
		return fmt.Sprintf("%dm %02ds", m, sec)
	}
	return fmt.Sprintf("%ds", sec)
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// streamRow builds a stream's list row; live streams also get their origins.
func (s *Server) streamRow(c *gin.Context, st *models.Stream) views.StreamRow {
	r := views.StreamRow{
		ID: st.ID, App: st.Application.Name, Name: st.Name, Owner: st.Owner.Username,
		Enabled: st.Enabled, Live: st.Live, Publishes: st.PublishCount,
	}
	if !st.Live {
		return r
	}
	r.Bitrate = formatBitrate(st.Bitrate)
	var cf codecFacts
	if len(st.CodecInfo) > 0 && json.Unmarshal(st.CodecInfo, &cf) == nil {
		var v []string
		if cf.VideoCodec != "" {
			v = append(v, strings.ToUpper(cf.VideoCodec))
		}
		if cf.Width > 0 && cf.Height > 0 {
			v = append(v, fmt.Sprintf("%dx%d", cf.Width, cf.Height))
		}
		if cf.FPS > 0 {
			v = append(v, fmt.Sprintf("%gfps", cf.FPS))
		}
		r.Video = strings.Join(v, " ")
		var a []string
		if cf.AudioCodec != "" {
			a = append(a, strings.ToUpper(cf.AudioCodec))
		}
		if cf.SampleRate > 0 {
			a = append(a, fmt.Sprintf("%d Hz", cf.SampleRate))
		}
		if cf.Channels > 0 {
			a = append(a, fmt.Sprintf("%dch", cf.Channels))
		}
		r.Audio = strings.Join(a, " ")
		if cf.Viewers != nil {
			r.Viewers = strconv.Itoa(*cf.Viewers)
		}
		r.Publisher = publisherText(cf.Publisher)
		if cf.Publisher != nil {
			r.Encoder = cf.Publisher.Encoder
		}
		r.GOP = gopText(s.lang(c), cf.GOPMillis, cf.GOPFrames)
	}
	origins, err := s.p.Store.StreamOrigins(rctx(c), st.ID)
	if err != nil {
		s.log.Error("ui: stream origins", "stream", st.ID, "err", err)
	}
	var since time.Time
	for _, o := range origins {
		r.Origins = append(r.Origins, o.NodeName)
		if since.IsZero() || o.Since.Before(since) {
			since = o.Since
		}
	}
	if st.LastPublishAt != nil && (since.IsZero() || st.LastPublishAt.Before(since)) {
		since = *st.LastPublishAt
	}
	if !since.IsZero() {
		r.Uptime = formatDuration(time.Since(since))
	}
	return r
}

func (s *Server) streamRows(c *gin.Context, f models.StreamFilter) ([]views.StreamRow, int64, error) {
	p := auth.PrincipalOf(c)
	if !p.SeesAllStreams() {
		f.OwnerID = p.User.ID
	}
	list, total, err := s.p.Store.ListStreams(rctx(c), f)
	if err != nil {
		return nil, 0, err
	}
	rows := make([]views.StreamRow, len(list))
	for i := range list {
		rows[i] = s.streamRow(c, &list[i])
	}
	return rows, total, nil
}

const uiListLimit = 200

func (s *Server) uiStreams(c *gin.Context) {
	rows, _, err := s.streamRows(c, models.StreamFilter{Limit: uiListLimit})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	vm := views.Streams{Rows: rows, CanCreate: auth.PrincipalOf(c).CanWrite(), Form: views.CreateStream{App: models.DefaultApp}}
	s.render(c, http.StatusOK, views.StreamsView(s.page(c, "Streams", "streams"), vm))
}

func (s *Server) uiStreamsTable(c *gin.Context) {
	rows, _, err := s.streamRows(c, models.StreamFilter{Limit: uiListLimit})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.StreamsTable(s.page(c, "Streams", "streams"), rows))
}

func (s *Server) uiCreateStream(c *gin.Context) {
	p := auth.PrincipalOf(c)
	if !p.CanWrite() {
		s.uiError(c, http.StatusForbidden, errors.New("viewers have read-only access"))
		return
	}
	l := s.lang(c)
	form := views.CreateStream{App: strings.TrimSpace(c.PostForm("app")), Name: strings.TrimSpace(c.PostForm("name")), Errors: views.FieldErrors{}}
	if form.App == "" {
		form.App = models.DefaultApp
	}
	st, err := s.core.CreateStream(rctx(c), auth.Actor(c), form.App, form.Name)
	switch {
	case errors.Is(err, models.ErrConflict):
		form.Errors["name"] = l.T("A stream %s/%s already exists.", form.App, form.Name)
	case s.uiFieldErrors(c, form.Errors, err):
	case err != nil:
		s.uiError(c, 0, err)
		return
	}
	if len(form.Errors) > 0 {
		rows, _, err := s.streamRows(c, models.StreamFilter{Limit: uiListLimit})
		if err != nil {
			s.uiError(c, 0, err)
			return
		}
		vm := views.Streams{Rows: rows, CanCreate: true, Form: form}
		s.render(c, http.StatusBadRequest, views.StreamsView(s.page(c, "Streams", "streams"), vm))
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=stream-created", st.ID))
}

// streamDetail builds the detail view model. The key and the commands that
// embed it are only filled in for the owner who asked to reveal them.
// recordingsDir is the stream's recording directory ("" without a record
// directory).
func (s *Server) recordingsDir(st *models.Stream) string {
	if s.p.RecordDir == "" || !filepath.IsAbs(s.p.RecordDir) {
		return ""
	}
	return compile.RecordingDir(s.p.RecordDir, st.ID)
}

// streamRecordings fills the page's recordings: newest first, and whether
// a record task runs now.
func (s *Server) streamRecordings(c *gin.Context, st *models.Stream, d *views.StreamDetail) {
	dir := s.recordingsDir(st)
	if dir == "" {
		return
	}
	d.HasRecordDir = true
	list, err := recordings.List(dir)
	if err != nil {
		s.log.Error("ui: list recordings", "stream", st.ID, "err", err)
	}
	for i := len(list) - 1; i >= 0; i-- {
		r := list[i]
		row := views.RecordingRow{Name: r.Name, Start: formatTime(&r.StartTime), Size: orZeroBytes(r.Size)}
		if r.DurationSeconds > 0 {
			row.Duration = formatDuration(time.Duration(r.DurationSeconds * float64(time.Second)))
		}
		d.Recordings = append(d.Recordings, row)
	}
	for _, t := range d.Tasks {
		if t.Type == models.TypeRecord && t.State == models.TaskRunning {
			d.RecordingNow = true
		}
	}
}

// orZeroBytes is formatBytes that shows an empty file as 0 B.
func orZeroBytes(n int64) string {
	if n <= 0 {
		return "0 B"
	}
	return formatBytes(n)
}

// uiRecording downloads one of the stream's recordings.
func (s *Server) uiRecording(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	p, err := recordings.File(s.recordingsDir(st), c.Param("name"))
	if err != nil {
		s.uiError(c, 0, httperr.NotFound("recording"))
		return
	}
	c.FileAttachment(p, filepath.Base(p))
}

// uiDeleteRecording deletes one of the stream's recordings.
func (s *Server) uiDeleteRecording(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	dir := s.recordingsDir(st)
	if dir == "" {
		s.uiError(c, 0, httperr.NotFound("recording"))
		return
	}
	if err := s.core.DeleteRecording(rctx(c), auth.Actor(c), st, dir, c.Param("name")); err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, recordings.ErrBadName) {
			err = httperr.NotFound("recording")
		}
		s.uiError(c, 0, err)
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=recording-deleted#recordings", st.ID))
}

func (s *Server) streamDetail(c *gin.Context, st *models.Stream, reveal bool) (views.StreamDetail, error) {
	p := auth.PrincipalOf(c)
	owner := p.Owns(st)
	reveal = reveal && owner
	play := s.urls.Play(c.Request, st.Application.Name, st.Name)
	d := views.StreamDetail{
		Row: s.streamRow(c, st), CanEdit: s.uiCanEdit(c, st), IsOwner: owner, KeyHint: streamurl.KeyHint(st.PublishKey), Revealed: reveal,
		OBSServer: s.urls.RTMPBase(c.Request, st.Application.Name),
		PlayRTMP:  play.RTMP,
		PlayFLV:   s.uiFLVURL(st),
		PlayURLs:  []views.PlayURL{{Proto: "RTMP", URL: play.RTMP}},
		Thumbnail: thumbnailURL(st),
	}
	if reveal {
		in := s.urls.Ingest(c.Request, st.Application.Name, st.Name, st.PublishKey)
		d.Key, d.OBSKey, d.IngestURL, d.FFmpeg = st.PublishKey, in.OBSStreamKey, in.RTMPURL, in.FFmpeg
		d.OBSServer = in.OBSServer
		// Who looked at a key, and when, is worth knowing after a leak.
		if err := s.core.RevealKey(rctx(c), auth.Actor(c), st); err != nil {
			s.log.Error("audit key reveal", "stream", st.ID, "err", err)
		}
	}
	cfgs, err := s.p.Store.ListTaskConfigs(rctx(c), st.ID)
	if err != nil {
		return d, err
	}
	for i := range cfgs {
		d.Configs = append(d.Configs, configRow(&cfgs[i]))
	}
	d.Tasks, err = s.taskRows(c, models.TaskFilter{StreamID: st.ID, LatestPerConfig: true, Limit: 50})
	if err != nil {
		return d, err
	}
	s.streamRecordings(c, st, &d)
	if play.RTSP != "" {
		d.PlayURLs = append(d.PlayURLs, views.PlayURL{Proto: "RTSP", URL: play.RTSP})
	}
	d.PlayURLs = append(d.PlayURLs, views.PlayURL{Proto: "HTTP-FLV", URL: play.FLV})
	if u := s.hlsPlayURL(c, st); u != "" {
		d.PlayURLs = append(d.PlayURLs, views.PlayURL{Proto: "HLS", URL: u})
	}
	d.PlayHLS, err = s.uiHLSURL(c, st)
	return d, err
}

// uiHLSURL is the master playlist of the stream's running HLS task, if it
// has one (the preview then prefers hls.js and falls back to HTTP-FLV).
func (s *Server) uiHLSURL(c *gin.Context, st *models.Stream) (string, error) {
	if !st.Live {
		return "", nil
	}
	tasks, _, err := s.p.Store.ListTasks(rctx(c), models.TaskFilter{StreamID: st.ID, State: models.TaskRunning, Limit: 20})
	if err != nil {
		return "", err
	}
	for _, t := range tasks {
		if t.Type != models.TypeHLS || t.DesiredState != models.DesiredRunning || len(t.Description.Outputs) == 0 {
			continue
		}
		if u := t.Description.Outputs[0]; strings.HasSuffix(u, ".m3u8") && (strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
			return u, nil
		}
	}
	return "", nil
}

// uiFLVURL is the preview's HTTP-FLV URL: same-origin (/APP/NAME.flv, where
// `portier run` mounts the relay) unless PlayHTTPBase names another server
// (which the CSP's connect-src then allows).
func (s *Server) uiFLVURL(st *models.Stream) string {
	p := "/" + url.PathEscape(st.Application.Name) + "/" + url.PathEscape(st.Name) + ".flv"
	u := strings.TrimSuffix(s.p.PlayHTTPBase, "/") + p
	// The operator's preview is not a viewer: marked as the system's own
	// play, with the proof the relay checks (signed per stream and type).
	if s.p.ClusterToken != "" {
		u += "?" + nodewire.InternalPlayURLQuery(s.p.ClusterToken, st.Application.Name+"/"+st.Name, "preview")
	}
	return u
}

func (s *Server) uiStream(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	d, err := s.streamDetail(c, st, c.Query("reveal") == "1")
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	d.NewKeyNote = c.Query("done") == "key-rotated"
	p := s.page(c, st.Application.Name+"/"+st.Name, "streams")
	if d.NewKeyNote {
		p.Flash = ""
	}
	s.render(c, http.StatusOK, views.StreamDetailView(p, d))
}

func (s *Server) uiStreamLive(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	d := views.StreamDetail{Row: s.streamRow(c, st), CanEdit: s.uiCanEdit(c, st)}
	s.render(c, http.StatusOK, views.StreamLive(s.page(c, "", "streams"), d))
}

func (s *Server) uiStreamIngest(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	d, err := s.streamDetail(c, st, c.Query("reveal") == "1")
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.IngestBlock(s.page(c, "", "streams"), d))
}

func (s *Server) uiStreamTasks(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	rows, err := s.taskRows(c, models.TaskFilter{StreamID: st.ID, LatestPerConfig: true, Limit: 50})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.TasksTable(s.page(c, "", "streams"), rows, "stream-tasks", c.Request.URL.Path))
}

func (s *Server) uiStreamEnabled(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	enabled := c.PostForm("enabled") == "true"
	_, err := s.core.UpdateStream(rctx(c), auth.Actor(c), st, models.StreamUpdate{Enabled: &enabled})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=stream-updated", st.ID))
}

func (s *Server) uiRotateKeyConfirm(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	l := s.lang(c)
	base := fmt.Sprintf("/streams/%d", st.ID)
	s.render(c, http.StatusOK, views.ConfirmView(s.page(c, "Rotate key", "streams"), views.Confirm{
		Question: l.T("Rotate the publish key of %s/%s?", st.Application.Name, st.Name),
		Detail:   l.T("The old key stops working at once: encoders using it cannot publish again until they get the new key."),
		Action:   base + "/rotate-key", Button: l.T("Rotate key"), Cancel: base,
	}))
}

func (s *Server) uiRotateKey(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	_, err := s.core.RotateKey(rctx(c), auth.Actor(c), st)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	target := fmt.Sprintf("/streams/%d?done=key-rotated", st.ID)
	if auth.PrincipalOf(c).Owns(st) {
		target += "&reveal=1"
	}
	redirect(c, target)
}

func (s *Server) uiKickConfirm(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	l := s.lang(c)
	base := fmt.Sprintf("/streams/%d", st.ID)
	s.render(c, http.StatusOK, views.ConfirmView(s.page(c, "Kick publisher", "streams"), views.Confirm{
		Question: l.T("End the current publish of %s/%s now?", st.Application.Name, st.Name),
		Detail:   l.T("The encoder is disconnected within a heartbeat and the stream goes offline. This is not a ban: the key stays valid and an encoder that reconnects publishes again. To keep it out, disable the stream or rotate the key."),
		Action:   base + "/kick", Button: l.T("Kick publisher"), Cancel: base, Danger: true,
	}))
}

func (s *Server) uiKick(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	if _, err := s.core.KickPublisher(rctx(c), auth.Actor(c), st); err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=publisher-kicked", st.ID))
}

func (s *Server) uiDeleteStreamConfirm(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	l := s.lang(c)
	base := fmt.Sprintf("/streams/%d", st.ID)
	s.render(c, http.StatusOK, views.ConfirmView(s.page(c, "Delete stream", "streams"), views.Confirm{
		Question: l.T("Delete %s/%s with its task configs and tasks?", st.Application.Name, st.Name),
		Detail:   l.T("This cannot be undone."),
		Action:   base + "/delete", Button: l.T("Delete stream"), Cancel: base, Danger: true,
	}))
}

func (s *Server) uiDeleteStream(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	err := s.core.DeleteStream(rctx(c), auth.Actor(c), st)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/streams?done=stream-deleted")
}
