package ui

import (
	"errors"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/web/i18n"
	"github.com/portier/portier/web/views"
)

// TestParseRenditionLines: the form's ladder lines, presets included, and
// their round trip through renditionLine once the store expanded them.
func TestParseRenditionLines(t *testing.T) {
	for _, tc := range []struct {
		line string
		want models.Rendition
		back string
	}{
		{"720p", models.Rendition{Preset: "720p"}, "720p 1280x720 2800 128"},
		{"audio", models.Rendition{Preset: "audio"}, "audio audio 128"},
		{"src copy", models.Rendition{Name: "src", Kind: "copy"}, "src copy"},
		{"radio audio 64", models.Rendition{Name: "radio", Kind: "audio", AudioBitrateKbps: 64}, "radio audio 64"},
		{"hd 1280x720 2500 128", models.Rendition{Name: "hd", Width: 1280, Height: 720, VideoBitrateKbps: 2500, AudioBitrateKbps: 128}, "hd 1280x720 2500 128"},
	} {
		got, err := parseRendition(tc.line)
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.line, got, err, tc.want)
			continue
		}
		spec := models.HLSSpec{Renditions: []models.Rendition{got}}
		if err := spec.Validate(); err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if l := renditionLine(spec.Renditions[0].Compile()); l != tc.back {
			t.Errorf("%q shows as %q, want %q", tc.line, l, tc.back)
		}
	}
	for _, bad := range []string{"4k", "src copy 100", "radio audio x", "hd 1280 2500", "hd 1280x720 fast"} {
		if _, err := parseRendition(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestPresetsTranslated: every name and help text of a preset menu has a
// German translation (they come from compile, so the catalogue test's
// scan of literal messages does not see them), and so have the key
// errors built from them.
func TestPresetsTranslated(t *testing.T) {
	for _, typ := range []string{models.TypeRestream, models.TypeHLS} {
		f := views.TaskConfigForm{Type: typ}
		presetOptions(&f)
		if len(f.Presets) < 6 {
			t.Fatalf("%s: %d preset options", typ, len(f.Presets))
		}
		for _, o := range f.Presets {
			for _, msg := range []string{o.Name, o.Help} {
				if msg != "" && !i18n.DE.Has(msg) {
					t.Errorf("%s preset %q: no German for %q", typ, o.ID, msg)
				}
			}
		}
	}
	for _, c := range [][2]string{
		{"rtmp://a.rtmp.youtube.com/live2", "live_1_a"},
		{"rtmp://a.rtmp.youtube.com/live2", ""},
		{"rtmp://relay.example/live", "rtmp://relay.example/live/k"},
	} {
		_, err := models.ParseSpec(models.TypeRestream, []byte(`{"target":"`+c[0]+`","key":"`+c[1]+`"}`))
		var se *models.SpecError
		if !errors.As(err, &se) || se.Field != "key" {
			t.Fatalf("%v: %v, want a key error", c, err)
		}
		if de := i18n.DE.Reason(se.Message); de == se.Message {
			t.Errorf("%q has no German", se.Message)
		}
	}
}
