// Package flvtest gives tests of other media packages the FLV sample of
// media/flv/testdata (0.4 s of 160x120 H.264 with B-frames and mono
// 44.1 kHz AAC, made with ffmpeg, with its onMetaData tag).
package flvtest

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/portier/portier/media/flv"
)

// SampleTags reads every tag of the sample, in file order.
func SampleTags(tb testing.TB) []flv.Tag {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(self), "..", "testdata", "sample.flv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f, 0)
	var tags []flv.Tag
	for {
		tag, err := r.Next()
		if errors.Is(err, io.EOF) {
			return tags
		}
		if err != nil {
			tb.Fatalf("read the FLV sample: %v", err)
		}
		tags = append(tags, tag)
	}
}
