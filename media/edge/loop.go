package edge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Loop defence. An edge must pull only from origins: pulling from itself
// (its own address in --origins, or advertised in the directory) or from
// another edge can close a loop in which a stream feeds itself. The edge
// refuses such upstreams before dialling, and ends a pull whose media
// arrives much faster than real time, which is what a loop (or a broken
// origin) looks like once it runs.

// Defaults of the rate guard.
const (
	// DefaultMaxRate is how many times faster than real time an upstream
	// may deliver media, measured over RateWindow.
	DefaultMaxRate = 4.0
	// DefaultRateWindow: the rate must exceed MaxRate for this long.
	DefaultRateWindow = 2 * time.Second
	// DefaultRateGrace: at the start of a session the origin sends its GOP
	// cache at once; the guard starts measuring after this.
	DefaultRateGrace = time.Second
	// loopBan is how long an upstream ended as a loop is not tried again
	// while other origins exist.
	loopBan = 30 * time.Second
)

// errLoop ends a session whose media runs faster than real time.
var errLoop = errors.New("upstream delivers media faster than real time (a loop?)")

// SetSelf records this relay's own RTMP addresses (listen and advertised):
// the edge never pulls from them. Call it before the hub serves readers.
func (e *Edge) SetSelf(addrs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range addrs {
		if a != "" && !slices.Contains(e.self, a) {
			e.self = append(e.self, a)
		}
	}
}

// IsSelf reports whether addr is one of this relay's own addresses (see
// SetSelf).
func (e *Edge) IsSelf(addr string) bool { return e.isSelf(addr) }

// isSelf reports whether addr (host:port) is one of this relay's own
// addresses. A listen address with an unspecified host (":1935",
// "0.0.0.0:1935") stands for every local address at that port.
func (e *Edge) isSelf(addr string) bool {
	e.mu.Lock()
	self := e.self
	e.mu.Unlock()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	for _, s := range self {
		if s == addr {
			return true
		}
		sh, sp, err := net.SplitHostPort(s)
		if err != nil || sp != port {
			continue
		}
		if sameHost(sh, host) {
			return true
		}
		if ip, err := netip.ParseAddr(sh); sh == "" || (err == nil && ip.IsUnspecified()) {
			if isLocalHost(host) {
				return true
			}
		}
	}
	return false
}

func sameHost(a, b string) bool {
	if a == b {
		return true
	}
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return ia.Unmap() == ib.Unmap()
	}
	return isLoopbackName(a) && isLoopbackName(b)
}

func isLoopbackName(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// isLocalHost reports whether h names this machine: a loopback address or
// name, or an address of one of its interfaces.
func isLocalHost(h string) bool {
	if isLoopbackName(h) {
		return true
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// refuse logs and counts an upstream the edge will not pull from.
func (e *Edge) refuse(path, addr, why string) {
	e.loopsRefused.Add(1)
	e.log.Warn("upstream refused: would close a loop", "path", path, "origin", addr, "reason", why)
}

// maxStep is the largest timestamp step (ms) between two units that counts
// as media progress; a larger one is a discontinuity (an encoder restart, a
// timestamp jump), not speed.
const maxStep = 1000

// rateGuard measures how fast an upstream's media timestamps advance
// against the wall clock. One session's goroutine owns it.
type rateGuard struct {
	max           float64
	window, grace time.Duration

	start       time.Time
	anchorWall  time.Time
	anchorMedia int64 // media at the anchor
	media       int64 // ms of media progress: the sum of forward steps
	last        int64
	started     bool
}

func newRateGuard(max float64, window, grace time.Duration) rateGuard {
	return rateGuard{max: max, window: window, grace: grace}
}

// observe records the DTS (ms) of a unit of one kind (video, or audio for
// a stream without video) at wall time now, and returns an error once the
// media advanced more than max times faster than the wall clock over a
// whole window. Until grace has passed the anchor follows the units (the
// GOP cache burst does not count). Backward steps and steps over maxStep
// add nothing.
func (g *rateGuard) observe(now time.Time, dts int64) error {
	if !g.started {
		g.start, g.anchorWall, g.last, g.started = now, now, dts, true
		return nil
	}
	if d := dts - g.last; d > 0 && d <= maxStep {
		g.media += d
	}
	g.last = dts
	if now.Sub(g.start) < g.grace {
		g.anchorWall, g.anchorMedia = now, g.media
		return nil
	}
	elapsed := now.Sub(g.anchorWall)
	if elapsed < g.window {
		return nil
	}
	media := time.Duration(g.media-g.anchorMedia) * time.Millisecond
	rate := float64(media) / float64(elapsed)
	if rate > g.max {
		return fmt.Errorf("%w: %.1fx real time for %v (limit %.0fx)", errLoop, rate, elapsed.Round(time.Millisecond), g.max)
	}
	g.anchorWall, g.anchorMedia = now, g.media
	return nil
}
