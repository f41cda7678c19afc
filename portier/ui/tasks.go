package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/web/views"
)

// configRow summarises a task config for the stream page (secrets such as
// a restream key are never shown back).
func configRow(tc *models.TaskConfig) views.TaskConfigRow {
	r := views.TaskConfigRow{ID: tc.ID, Type: tc.Type, Name: tc.Name, Enabled: tc.Enabled, Version: tc.Version}
	switch tc.Type {
	case models.TypeRestream:
		if sp, err := tc.Restream(); err == nil {
			r.Summary = sp.Target + " (" + sp.Format + ")"
			if sp.Key != "" {
				r.Summary += " + key"
			}
		}
	case models.TypeRecord:
		if sp, err := tc.Record(); err == nil {
			r.Summary = fmt.Sprintf("%s, %d s segments", sp.Format, sp.SegmentSeconds)
		}
	case models.TypePull:
		if sp, err := tc.Pull(); err == nil {
			r.Summary = sp.Source
		}
	case models.TypeHLS:
		if sp, err := tc.HLS(); err == nil {
			var names []string
			for _, rd := range sp.Renditions {
				switch rd.Kind {
				case compile.KindCopy, compile.KindAudio:
					names = append(names, rd.Name+" ("+rd.Kind+")")
				default:
					names = append(names, fmt.Sprintf("%s %dx%d", rd.Name, rd.Width, rd.Height))
				}
			}
			r.Summary = strings.Join(names, ", ")
		}
	}
	return r
}

func validConfigType(t string) bool {
	return t == models.TypeRestream || t == models.TypeRecord || t == models.TypePull || t == models.TypeHLS
}

func (s *Server) uiNewConfig(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	typ := c.Query("type")
	if !validConfigType(typ) {
		s.uiError(c, http.StatusBadRequest, errors.New("type must be restream, record, pull or hls"))
		return
	}
	f := views.TaskConfigForm{StreamID: st.ID, StreamName: st.Name, Type: typ, Enabled: true, Errors: views.FieldErrors{}}
	switch typ {
	case models.TypeRecord:
		f.SegmentSeconds, f.RecordFormat = "60", "mp4"
	case models.TypeHLS:
		f.Renditions = "720p\n480p\n360p\naudio"
		f.HLSSegmentSeconds = "2"
	}
	s.renderConfigForm(c, http.StatusOK, f)
}

func (s *Server) renderConfigForm(c *gin.Context, status int, f views.TaskConfigForm) {
	l := s.lang(c)
	title := l.T("Add %s", l.T(f.Type))
	if f.ID != 0 {
		title = l.T("Edit %s", f.Name)
	}
	p := s.page(c, "", "streams")
	p.Title = title + " · " + f.StreamName
	f.NameRule = models.NameRule
	presetOptions(&f)
	s.render(c, status, views.TaskConfigFormView(p, f))
}

// presetOptions fills the form's preset menu (compile.RestreamPresets or
// LadderPresets, after a "Custom" entry), picks the entry the fields
// match when none is chosen, and describes the key the target's platform
// expects.
func presetOptions(f *views.TaskConfigForm) {
	switch f.Type {
	case models.TypeRestream:
		f.Presets = []views.PresetOption{{Name: "Custom", Help: compile.CustomTargetHelp}}
		for _, p := range compile.RestreamPresets {
			f.Presets = append(f.Presets, views.PresetOption{ID: p.ID, Name: p.Name, Target: p.Target, KeyShape: p.KeyShape, Help: p.Help})
		}
		f.KeyHelp = compile.CustomTargetHelp
		p, ok := compile.RestreamPresetForTarget(f.Target)
		if !ok && f.Target == "" {
			p, ok = compile.RestreamPresetByID(f.Preset)
		}
		if ok {
			f.KeyShape, f.KeyHelp = p.KeyShape, p.Help
			if _, chosen := compile.RestreamPresetByID(f.Preset); !chosen {
				f.Preset = p.ID
			}
		}
	case models.TypeHLS:
		f.Presets = []views.PresetOption{{Name: "Custom"}}
		for _, l := range compile.LadderPresets {
			lines := ladderLines(l.Renditions)
			f.Presets = append(f.Presets, views.PresetOption{ID: l.ID, Name: l.Name, Lines: lines})
			if f.Preset == "" && strings.TrimSpace(f.Renditions) == lines {
				f.Preset = l.ID
			}
		}
	}
}

// applyPreset puts the chosen preset into the form: its target or ladder
// replaces the field's on "Apply preset" (the button of the form without
// JavaScript; app.js fills at once), and fills an empty field on Save. On
// "Apply preset" it shows the form again, unsaved, and reports true.
func (s *Server) applyPreset(c *gin.Context, f *views.TaskConfigForm) bool {
	apply := c.PostForm("apply") == "preset"
	switch f.Type {
	case models.TypeRestream:
		if p, ok := compile.RestreamPresetByID(f.Preset); ok && (apply || f.Target == "") {
			f.Target = p.Target
		}
	case models.TypeHLS:
		if l, ok := compile.LadderPresetByID(f.Preset); ok && (apply || strings.TrimSpace(f.Renditions) == "") {
			f.Renditions = ladderLines(l.Renditions)
		}
	}
	if apply {
		s.renderConfigForm(c, http.StatusOK, *f)
	}
	return apply
}

// ladderLines is a ladder as the renditions field writes it.
func ladderLines(rs []compile.Rendition) string {
	lines := make([]string, len(rs))
	for i, r := range rs {
		lines[i] = renditionLine(r)
	}
	return strings.Join(lines, "\n")
}

// configForm reads the posted form.
func configForm(c *gin.Context, st *models.Stream, typ string) views.TaskConfigForm {
	return views.TaskConfigForm{
		StreamID: st.ID, StreamName: st.Name, Type: typ,
		Name:    strings.TrimSpace(c.PostForm("name")),
		Enabled: c.PostForm("enabled") == "true",
		Target:  strings.TrimSpace(c.PostForm("target")), Key: strings.TrimSpace(c.PostForm("key")), Format: c.PostForm("format"),
		SegmentSeconds: strings.TrimSpace(c.PostForm("segment_seconds")), RecordFormat: c.PostForm("record_format"),
		Source:     strings.TrimSpace(c.PostForm("source")),
		Renditions: c.PostForm("renditions"), HLSSegmentSeconds: strings.TrimSpace(c.PostForm("hls_segment_seconds")),
		Preset: c.PostForm("preset"),
		Errors: views.FieldErrors{},
	}
}

// formSpec turns the form into the API's spec JSON; the store validates it
// (models.ParseSpec). Only what the form itself must parse (numbers, the
// rendition lines) is checked here.
func formSpec(f *views.TaskConfigForm) []byte {
	atoi := func(field, v string) int {
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			f.Errors[field] = "must be a whole number"
		}
		return n
	}
	var spec any
	switch f.Type {
	case models.TypeRestream:
		spec = models.RestreamSpec{Target: f.Target, Key: f.Key, Format: f.Format}
	case models.TypeRecord:
		spec = models.RecordSpec{SegmentSeconds: atoi("segment_seconds", f.SegmentSeconds), Format: f.RecordFormat}
	case models.TypePull:
		spec = models.PullSpec{Source: f.Source}
	case models.TypeHLS:
		h := models.HLSSpec{SegmentSeconds: atoi("segment_seconds", f.HLSSegmentSeconds)}
		for i, line := range strings.Split(strings.TrimSpace(f.Renditions), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			r, err := parseRendition(line)
			if err != nil {
				f.Errors["renditions"] = fmt.Sprintf("line %d: %v", i+1, err)
				break
			}
			h.Renditions = append(h.Renditions, r)
		}
		spec = h
	}
	b, _ := json.Marshal(spec)
	if f.Type == models.TypeRecord && f.SegmentSeconds == "" {
		// An empty field takes the default: leave the key out (a 0 would
		// be refused as the mistake it is when typed).
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			delete(m, "segment_seconds")
			b, _ = json.Marshal(m)
		}
	}
	return b
}

// parseRendition reads one line of the form's ladder: a preset alone
// ("720p", "audio", "copy": compile.PresetNames), "name copy",
// "name audio [AUDIO_KBPS]" or "name WIDTHxHEIGHT VIDEO_KBPS [AUDIO_KBPS]".
func parseRendition(line string) (models.Rendition, error) {
	var r models.Rendition
	f := strings.Fields(line)
	if len(f) == 1 {
		if _, ok := compile.Presets[f[0]]; !ok {
			return r, fmt.Errorf("%q is not a preset (%s)", f[0], strings.Join(compile.PresetNames, ", "))
		}
		return models.Rendition{Preset: f[0]}, nil
	}
	r.Name = f[0]
	switch strings.ToLower(f[1]) {
	case compile.KindCopy:
		if len(f) != 2 {
			return r, errors.New(`write "name copy": a copy rendition has no size or bitrate`)
		}
		r.Kind = compile.KindCopy
		return r, nil
	case compile.KindAudio:
		r.Kind = compile.KindAudio
		if len(f) > 3 {
			return r, errors.New(`write "name audio audio-kbps", e.g. "radio audio 96"`)
		}
		if len(f) == 3 {
			a, err := strconv.Atoi(f[2])
			if err != nil {
				return r, fmt.Errorf("audio bitrate %q must be a number of kbit/s", f[2])
			}
			r.AudioBitrateKbps = a
		}
		return r, nil
	}
	if len(f) < 3 || len(f) > 4 {
		return r, errors.New(`write a preset (e.g. "720p") or "name WIDTHxHEIGHT video-kbps audio-kbps", e.g. "720p 1280x720 2500 128"`)
	}
	w, h, ok := strings.Cut(strings.ToLower(f[1]), "x")
	var err1, err2, err3 error
	r.Width, err1 = strconv.Atoi(w)
	r.Height, err2 = strconv.Atoi(h)
	r.VideoBitrateKbps, err3 = strconv.Atoi(f[2])
	if !ok || err1 != nil || err2 != nil {
		return r, fmt.Errorf("size %q must look like 1280x720", f[1])
	}
	if err3 != nil {
		return r, fmt.Errorf("video bitrate %q must be a number of kbit/s", f[2])
	}
	if len(f) == 4 {
		a, err := strconv.Atoi(f[3])
		if err != nil {
			return r, fmt.Errorf("audio bitrate %q must be a number of kbit/s", f[3])
		}
		r.AudioBitrateKbps = a
	}
	return r, nil
}

// renditionLine is the form's line for an expanded rendition.
func renditionLine(r compile.Rendition) string {
	switch r.Kind {
	case compile.KindCopy:
		return r.Name + " copy"
	case compile.KindAudio:
		return fmt.Sprintf("%s audio %d", r.Name, r.AudioBitrate)
	}
	return fmt.Sprintf("%s %dx%d %d %d", r.Name, r.Width, r.Height, r.VideoBitrate, r.AudioBitrate)
}

// specFieldError puts a store validation error next to its form field.
func (s *Server) specFieldError(c *gin.Context, f *views.TaskConfigForm, err error) bool {
	fes := core.FieldErrors(err)
	for _, se := range fes {
		field := se.Field
		switch {
		case strings.HasPrefix(field, "renditions"):
			f.Errors["renditions"] = se.Field + " " + se.Message
			continue
		case field == "target", field == "key", field == "format", field == "source", field == "segment_seconds", field == "name":
		default:
			field = "form"
		}
		f.Errors[field] = s.uiFieldMessage(c, se)
	}
	return len(fes) > 0
}

func (s *Server) uiCreateConfig(c *gin.Context) {
	st := s.uiEditableStream(c)
	if st == nil {
		return
	}
	typ := c.PostForm("type")
	if !validConfigType(typ) {
		s.uiError(c, http.StatusBadRequest, errors.New("type must be restream, record, pull or hls"))
		return
	}
	f := configForm(c, st, typ)
	if s.applyPreset(c, &f) {
		return
	}
	spec := formSpec(&f)
	if len(f.Errors) > 0 {
		// The form's own errors, and every other field's too: all at once.
		s.addFieldErrors(c, &f, core.CheckTaskConfig(typ, &f.Name, spec))
		s.renderConfigForm(c, http.StatusBadRequest, f)
		return
	}
	tc := &models.TaskConfig{Type: typ, Name: f.Name, Enabled: f.Enabled, Spec: spec}
	if s.configSaveFailed(c, &f, s.core.CreateTaskConfig(rctx(c), auth.Actor(c), st, tc)) {
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=config-saved", st.ID))
}

// addFieldErrors adds err's field errors to the form's, keeping the
// form's own where both name a field.
func (s *Server) addFieldErrors(c *gin.Context, f *views.TaskConfigForm, err error) {
	more := views.FieldErrors{}
	if !s.specFieldError(c, &views.TaskConfigForm{Type: f.Type, Errors: more}, err) {
		return
	}
	for k, v := range more {
		if _, ok := f.Errors[k]; !ok {
			f.Errors[k] = v
		}
	}
}

// configSaveFailed shows validation and name conflicts at their fields and
// anything else as an error page; it reports whether the save failed.
func (s *Server) configSaveFailed(c *gin.Context, f *views.TaskConfigForm, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, models.ErrConflict):
		f.Errors["name"] = s.lang(c).T("This stream already has a task config named %s.", f.Name)
	case s.specFieldError(c, f, err):
	default:
		s.uiError(c, 0, err)
		return true
	}
	s.renderConfigForm(c, http.StatusBadRequest, *f)
	return true
}

func (s *Server) uiLoadConfig(c *gin.Context) (*models.Stream, *models.TaskConfig) {
	st := s.uiEditableStream(c)
	if st == nil {
		return nil, nil
	}
	cid, err := strconv.ParseInt(c.Param("cid"), 10, 64)
	if err != nil {
		s.uiError(c, 0, httperr.NotFound("task config"))
		return nil, nil
	}
	tc, err := s.p.Store.TaskConfigByID(rctx(c), st.ID, cid)
	if err != nil {
		s.uiError(c, 0, err)
		return nil, nil
	}
	return st, tc
}

func (s *Server) uiEditConfig(c *gin.Context) {
	st, tc := s.uiLoadConfig(c)
	if tc == nil {
		return
	}
	f := views.TaskConfigForm{StreamID: st.ID, StreamName: st.Name, ID: tc.ID, Type: tc.Type, Name: tc.Name, Enabled: tc.Enabled, Errors: views.FieldErrors{}}
	switch tc.Type {
	case models.TypeRestream:
		sp, _ := tc.Restream()
		f.Target, f.Key, f.Format = sp.Target, sp.Key, sp.Format
	case models.TypeRecord:
		sp, _ := tc.Record()
		f.SegmentSeconds, f.RecordFormat = strconv.Itoa(sp.SegmentSeconds), sp.Format
	case models.TypePull:
		sp, _ := tc.Pull()
		f.Source = sp.Source
	case models.TypeHLS:
		sp, _ := tc.HLS()
		var lines []string
		for _, r := range sp.Renditions {
			lines = append(lines, renditionLine(r.Compile()))
		}
		f.Renditions, f.HLSSegmentSeconds = strings.Join(lines, "\n"), strconv.Itoa(sp.SegmentSeconds)
	}
	s.renderConfigForm(c, http.StatusOK, f)
}

func (s *Server) uiUpdateConfig(c *gin.Context) {
	st, tc := s.uiLoadConfig(c)
	if tc == nil {
		return
	}
	f := configForm(c, st, tc.Type)
	f.ID = tc.ID
	if s.applyPreset(c, &f) {
		return
	}
	spec := formSpec(&f)
	if len(f.Errors) > 0 {
		s.renderConfigForm(c, http.StatusBadRequest, f)
		return
	}
	_, err := s.core.UpdateTaskConfig(rctx(c), auth.Actor(c), st, tc, models.TaskConfigUpdate{Name: &f.Name, Enabled: &f.Enabled, Spec: spec})
	if s.configSaveFailed(c, &f, err) {
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=config-saved", st.ID))
}

func (s *Server) uiDeleteConfigConfirm(c *gin.Context) {
	st, tc := s.uiLoadConfig(c)
	if tc == nil {
		return
	}
	l := s.lang(c)
	base := fmt.Sprintf("/streams/%d", st.ID)
	s.render(c, http.StatusOK, views.ConfirmView(s.page(c, "Delete task config", "streams"), views.Confirm{
		Question: l.T("Delete the task config %s of %s?", tc.Name, st.Name),
		Detail:   l.T("Its running task stops."),
		Action:   fmt.Sprintf("%s/configs/%d/delete", base, tc.ID), Button: l.T("Delete"), Cancel: base, Danger: true,
	}))
}

func (s *Server) uiDeleteConfig(c *gin.Context) {
	st, tc := s.uiLoadConfig(c)
	if tc == nil {
		return
	}
	if err := s.core.DeleteTaskConfig(rctx(c), auth.Actor(c), st, tc); err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, fmt.Sprintf("/streams/%d?done=config-deleted", st.ID))
}
