package hlscred

import (
	"errors"
	"testing"
)

func TestSignVerify(t *testing.T) {
	c := Cred{StreamID: 7, TaskID: 42, Epoch: 3}
	s := Sign("tok", c)
	got, err := Verify("tok", s)
	if err != nil || got != c {
		t.Fatalf("Verify(Sign) = %+v, %v; want %+v", got, err, c)
	}
	for _, bad := range []string{
		"", "hls1.", "hls1.7.42.3", "hls2" + s[4:], s + "0", s[:len(s)-1] + "x",
		Sign("other", c), "hls1.7.42.0." + sig("tok", Cred{7, 42, 0}), "hls1.-7.42.3.00", "hls1.07.42.3.x.y",
	} {
		if _, err := Verify("tok", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
	if _, err := Verify("", s); err == nil {
		t.Error("empty cluster token accepted a credential")
	}
	// A credential for one stream does not verify as another's.
	if _, err := Verify("tok", "hls1.8.42.3."+sig("tok", c)); err == nil {
		t.Error("signature of stream 7 accepted for stream 8")
	}
}

func TestBefore(t *testing.T) {
	cur := Cred{StreamID: 1, TaskID: 10, Epoch: 2}
	for _, tc := range []struct {
		c    Cred
		want bool
	}{
		{Cred{1, 10, 1}, true}, {Cred{1, 9, 5}, true}, {Cred{1, 10, 2}, false},
		{Cred{1, 10, 3}, false}, {Cred{1, 11, 1}, false},
	} {
		if got := tc.c.Before(cur); got != tc.want {
			t.Errorf("%+v.Before(%+v) = %v, want %v", tc.c, cur, got, tc.want)
		}
	}
}
