package nodeapi

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseHookAllow(t *testing.T) {
	got, err := ParseHookAllow(" srs=10.0.0.0/8, 192.168.1.7 ;nginx-rtmp=::1;mediamtx=10.1.2.3/16")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"srs": {"10.0.0.0/8", "192.168.1.7/32"}, "nginx-rtmp": {"::1/128"}, "mediamtx": {"10.1.0.0/16"}}
	for d, ps := range want {
		if len(got[d]) != len(ps) {
			t.Fatalf("%s: %v", d, got[d])
		}
		for i, p := range ps {
			if got[d][i] != netip.MustParsePrefix(p) {
				t.Errorf("%s[%d] = %v, want %s", d, i, got[d][i], p)
			}
		}
	}
	// Without DIALECT=, a list is for every media-server dialect, not the
	// native node API; both forms mix.
	mixed, err := ParseHookAllow("127.0.0.1/32, 10.0.0.0/8;native=192.168.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"srs", "nginx-rtmp", "mediamtx"} {
		if len(mixed[d]) != 2 || mixed[d][0] != netip.MustParsePrefix("127.0.0.1/32") || mixed[d][1] != netip.MustParsePrefix("10.0.0.0/8") {
			t.Errorf("bare list for %s: %v", d, mixed[d])
		}
	}
	if len(mixed["native"]) != 1 || mixed["native"][0] != netip.MustParsePrefix("192.168.0.0/16") {
		t.Errorf("native: %v", mixed["native"])
	}
	if m, err := ParseHookAllow(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
	for _, bad := range []string{"srs", "wowza=10.0.0.0/8", "srs=10.0.0.0/33", "srs=example.com"} {
		if _, err := ParseHookAllow(bad); err == nil || !strings.Contains(err.Error(), "hook allow-list") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseOriginTTL(t *testing.T) {
	got, err := ParseOriginTTL("mediamtx=60s; nginx-rtmp=2m")
	if err != nil || got["mediamtx"] != time.Minute || got["nginx-rtmp"] != 2*time.Minute {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"mediamtx=soon", "mediamtx=10ms", "mediamtx=1s,2s", "x=1s"} {
		if _, err := ParseOriginTTL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
