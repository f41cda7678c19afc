package ui

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestLoginThrottleBounded: the tables never grow past maxThrottleKeys, and
// the most attacked account survives eviction.
func TestLoginThrottleBounded(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	th := newLoginThrottle(func() time.Time { return at })
	for range 8 {
		th.Fail("victim", "192.0.2.1")
	}
	for i := range maxThrottleKeys + 500 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		th.Fail(fmt.Sprintf("spray%d", i), a.String())
	}
	if na, nd := th.size(); na > maxThrottleKeys || nd > maxThrottleKeys {
		t.Fatalf("tables grew to %d accounts, %d addresses", na, nd)
	}
	if th.Wait("victim", "198.51.100.1") == 0 {
		t.Fatal("the attacked account was evicted")
	}
}
