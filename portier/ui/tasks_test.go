package ui

import (
	"testing"

	"github.com/portier/portier/models"
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
		if l := renditionLine(spec.Renditions[0]); l != tc.back {
			t.Errorf("%q shows as %q, want %q", tc.line, l, tc.back)
		}
	}
	for _, bad := range []string{"4k", "src copy 100", "radio audio x", "hd 1280 2500", "hd 1280x720 fast"} {
		if _, err := parseRendition(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
