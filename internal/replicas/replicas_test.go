package replicas

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string // String() of the list, or the error's substring
		wantErr bool
	}{
		{in: "http://a:8080", want: "http://a:8080"},
		{in: " http://a:8080/ , https://b:8443,", want: "http://a:8080,https://b:8443"},
		{in: "http://u:pw@a:1", want: "http://a:1"},
		{in: "", want: "no control plane URL", wantErr: true},
		{in: " , ", want: "no control plane URL", wantErr: true},
		{in: "http://a:1,ftp://b", want: `"ftp://b"`, wantErr: true},
		{in: "http://a:1,http://a:1/", want: "listed twice", wantErr: true},
		{in: "http://u:secret@:1", want: "http://:1", wantErr: true},
	} {
		l, err := Parse(tc.in)
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Parse(%q) error = %v, want one containing %q", tc.in, err, tc.want)
		case tc.wantErr && strings.Contains(err.Error(), "secret"):
			t.Errorf("Parse(%q) error leaks the password: %v", tc.in, err)
		case !tc.wantErr && err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case !tc.wantErr && l.String() != tc.want:
			t.Errorf("Parse(%q) = %s, want %s", tc.in, l.String(), tc.want)
		}
	}
}

// Failed moves on from the current replica once, however many callers saw
// it fail, and wraps around.
func TestFailedMovesOnce(t *testing.T) {
	l, _ := Parse("http://a:1,http://b:1,http://c:1")
	if i, _ := l.Current(); i != 0 {
		t.Fatalf("current = %d", i)
	}
	if !l.Failed(0) || l.Failed(0) {
		t.Fatal("two failures of replica 0 must move on once")
	}
	l.Failed(1)
	l.Failed(2)
	if i, u := l.Current(); i != 0 || u != "http://a:1" {
		t.Fatalf("after wrapping: %d %s", i, u)
	}
	if _, u := l.At(4); u != "http://b:1" {
		t.Fatalf("At(4) = %s", u)
	}
	one, _ := Parse("http://a:1")
	if one.Failed(0) {
		t.Fatal("a single replica has nowhere to move")
	}
}
