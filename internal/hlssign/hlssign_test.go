package hlssign

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := Secret("cluster-token")
	now := time.Unix(1_800_000_000, 0)
	q := Sign(secret, StreamPrefix(42), now.Add(time.Hour))
	for _, p := range []string{"/hls/s/42/master.m3u8", "/hls/s/42/720p/index.m3u8", "/hls/s/42/720p/100000001.ts"} {
		if err := Verify(secret, p, q, now); err != nil {
			t.Errorf("Verify(%s) = %v", p, err)
		}
	}
	cases := []struct {
		name   string
		secret string
		path   string
		q      url.Values
		now    time.Time
		want   error
	}{
		{"other stream", secret, "/hls/s/43/master.m3u8", q, now, ErrInvalid},
		{"prefix trick", secret, "/hls/s/420/master.m3u8", q, now, ErrInvalid},
		{"other secret", Secret("other"), "/hls/s/42/master.m3u8", q, now, ErrInvalid},
		{"expired", secret, "/hls/s/42/master.m3u8", q, now.Add(2 * time.Hour), ErrExpired},
		{"unsigned", secret, "/hls/s/42/master.m3u8", url.Values{}, now, ErrMissing},
		{"not a stream path", secret, "/hls/x/42/master.m3u8", q, now, ErrInvalid},
		{"extended expiry", secret, "/hls/s/42/master.m3u8", url.Values{"exp": {"9999999999"}, "sig": q["sig"]}, now, ErrInvalid},
	}
	for _, c := range cases {
		if err := Verify(c.secret, c.path, c.q, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestPrefixOf(t *testing.T) {
	for in, want := range map[string]string{
		"/hls/s/1/a/b.ts": "/hls/s/1/", "/hls/s/77/master.m3u8": "/hls/s/77/",
		"/hls/s//x": "", "/hls/s/1": "", "/hls/s/a1/x": "", "/other/s/1/x": "",
	} {
		got, ok := PrefixOf(in)
		if got != want || ok != (want != "") {
			t.Errorf("PrefixOf(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestStrip(t *testing.T) {
	q := Sign("s", "/hls/s/1/", time.Unix(10, 0))
	q.Set("CMCD", "bl=100")
	Strip(q)
	if q.Encode() != "CMCD=bl%3D100" {
		t.Fatalf("after Strip: %s", q.Encode())
	}
}
