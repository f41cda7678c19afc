package core

import (
	"testing"
)

// A config with several mistakes names every one at once, and an explicit
// segment length of 0 is refused rather than replaced by the default.
func TestCheckTaskConfigAllErrors(t *testing.T) {
	name := "bad name!"
	err := CheckTaskConfig("restream", &name, []byte(`{"target":"http://not-rtmp.example/live"}`))
	fields := map[string]bool{}
	for _, se := range FieldErrors(err) {
		fields[se.Field] = true
	}
	if !fields["name"] || !fields["target"] {
		t.Fatalf("field errors %v (%v), want name and target", fields, err)
	}
	for _, spec := range []string{`{"segment_seconds":0}`, `{"segment_seconds": 0 ,"format":"mp4"}`} {
		fes := FieldErrors(CheckTaskConfig("record", nil, []byte(spec)))
		if len(fes) != 1 || fes[0].Field != "segment_seconds" {
			t.Errorf("%s: %v, want a segment_seconds error", spec, fes)
		}
	}
	for _, spec := range []string{`{}`, `{"segment_seconds":600}`} {
		if err := CheckTaskConfig("record", nil, []byte(spec)); err != nil {
			t.Errorf("%s refused: %v", spec, err)
		}
	}
}
