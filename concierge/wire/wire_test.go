package wire

import (
	"slices"
	"strings"
	"testing"

	"github.com/portier/portier/portier/compile"
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

func TestWithCredential(t *testing.T) {
	d := Description{Args: []string{"-i", "x", "-headers", "Authorization: Bearer " + CredentialPlaceholder + "\r\n", "out"}, CredentialArg: 3}
	got, err := d.WithCredential("hls1.1.2.3.abcd")
	if err != nil || got.Args[3] != "Authorization: Bearer hls1.1.2.3.abcd\r\n" {
		t.Fatalf("%q %v", got.Args, err)
	}
	if !strings.Contains(d.Args[3], CredentialPlaceholder) {
		t.Error("WithCredential changed the caller's arguments")
	}
	for _, bad := range []struct {
		d    Description
		cred string
	}{
		{d, ""},
		{d, "a\r\nX-Evil: 1"},
		{d, "a b"},
		{Description{Args: []string{"-i", "x"}, CredentialArg: 1}, "c"},
		{Description{Args: []string{"-i"}, CredentialArg: 5}, "c"},
	} {
		if _, err := bad.d.WithCredential(bad.cred); err == nil {
			t.Errorf("%q with %q: no error", bad.d.Args, bad.cred)
		}
	}
	// No CredentialArg: nothing to do, whatever the assignment carries.
	plain := Description{Args: []string{"-i", "x"}}
	if got, err := plain.WithCredential(""); err != nil || !slices.Equal(got.Args, plain.Args) {
		t.Errorf("%q %v", got.Args, err)
	}
}

// The compiler writes the placeholder the concierge replaces.
func TestCredentialPlaceholderIsTheCompilers(t *testing.T) {
	if CredentialPlaceholder != compile.CredentialPlaceholder {
		t.Fatalf("wire %q, compile %q", CredentialPlaceholder, compile.CredentialPlaceholder)
	}
}
