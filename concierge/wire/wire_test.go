package wire

import (
	"slices"
	"testing"
)

func TestRebase(t *testing.T) {
	in := "rtmp://127.0.0.1:1935/live/cam?portier_internal=restream"
	d := Description{
		Args:  []string{"-i", in, "-f", "flv", "rtmp://127.0.0.1:1935/other/KEY"},
		Input: in, Relay: "rtmp://127.0.0.1:1935", RelayArgs: []int{1},
	}
	got := d.Rebase("rtmp://edge-1:1936/")
	want := []string{"-i", "rtmp://edge-1:1936/live/cam?portier_internal=restream", "-f", "flv", "rtmp://127.0.0.1:1935/other/KEY"}
	if !slices.Equal(got.Args, want) {
		t.Errorf("args %q, want %q (only the relay arguments move, not a target on the same host)", got.Args, want)
	}
	if got.Input != want[1] || got.Relay != "rtmp://edge-1:1936" {
		t.Errorf("input %q relay %q", got.Input, got.Relay)
	}
	if d.Args[1] != in {
		t.Error("Rebase changed the original's arguments")
	}
	for _, relay := range []string{"", "rtmp://127.0.0.1:1935"} {
		if r := d.Rebase(relay); !slices.Equal(r.Args, d.Args) {
			t.Errorf("Rebase(%q) changed %q", relay, r.Args)
		}
	}
	// An index out of range or an argument not on the relay is left alone.
	odd := Description{Args: []string{"-i", "rtsp://cam/x"}, Relay: "rtmp://r:1935", RelayArgs: []int{1, 7, -1}}
	if r := odd.Rebase("rtmp://e:1935"); !slices.Equal(r.Args, odd.Args) {
		t.Errorf("odd: %q", r.Args)
	}
}
