package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// flapThreshold: an upstream session that delivered media but ended sooner
// than this is flapping; the puller pauses RetryInterval before the next
// attempt instead of re-dialling at once.
const flapThreshold = 250 * time.Millisecond

// errPublisherGone: the hub closed the edge's publisher (hub shutdown or a
// local publisher took the path over); the puller stops.
var errPublisherGone = errors.New("edge publisher closed")

// puller keeps one upstream session for one path and feeds one hub
// publisher across upstream switches. Its goroutine (run) owns the session
// and the publisher; mu guards only the fields read by info.
type puller struct {
	e      *Edge
	path   string
	app    string
	name   string
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	origin    string
	since     time.Time
	failovers uint64
}

var _ stream.Source = (*puller)(nil)

// Close stops the puller: the upstream session ends and the publisher is
// closed. The hub calls it when the last player left IdleTimeout ago.
func (pl *puller) Close() error {
	pl.cancel()
	<-pl.done
	return nil
}

func (pl *puller) info() Upstream {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return Upstream{Path: pl.path, Origin: pl.origin, Since: pl.since, Failovers: pl.failovers}
}

func (pl *puller) setOrigin(addr string) {
	pl.mu.Lock()
	pl.origin, pl.since = addr, time.Now()
	pl.mu.Unlock()
}

// state is what survives from one upstream session to the next.
type pullState struct {
	pub        *stream.Publisher
	reb        rebaser
	delivered  bool      // some session delivered media
	lostAt     time.Time // when the last session that delivered ended
	lastDir    []string
	avoid      string
	lastOrigin string
	codec      stream.CodecInfo
	refused    map[string]bool      // upstreams refused as loops (logged once)
	banned     map[string]time.Time // upstreams ended as loops, until when
}

func (pl *puller) run(ctx context.Context) {
	defer close(pl.done)
	defer pl.e.forget(pl)
	st := &pullState{lostAt: time.Now(), refused: map[string]bool{}, banned: map[string]time.Time{}}
	defer func() {
		if st.pub != nil {
			st.pub.Close()
		}
	}()
	for ctx.Err() == nil {
		var list []string
		list, st.lastDir = pl.e.candidates(ctx, pl.app, pl.name, st.lastDir, st.avoid, st.refused)
		progressed := false
		for _, addr := range list {
			if ctx.Err() != nil {
				return
			}
			if until, ok := st.banned[addr]; ok {
				if time.Now().Before(until) {
					continue
				}
				delete(st.banned, addr)
			}
			began := time.Now()
			n, err := pl.session(ctx, addr, st)
			if errors.Is(err, errPublisherGone) || errors.Is(err, stream.ErrAlreadyPublishing) {
				pl.log.Info("edge pull stops", "reason", err)
				return
			}
			if errors.Is(err, errLoop) {
				pl.e.loopsEnded.Add(1)
				pl.log.Warn("upstream pull ended as a loop; trying another origin", "origin", addr, "err", err, "units", n)
				st.banned[addr] = time.Now().Add(loopBan)
				st.lostAt, st.avoid, progressed = time.Now(), addr, true
				break
			}
			if n > 0 {
				// Lost an upstream that worked: try every other origin
				// before this one.
				st.lostAt = time.Now()
				st.avoid = addr
				// Look again at once, unless the session was so short
				// that the origin is flapping: then pause as usual.
				progressed = st.lostAt.Sub(began) > flapThreshold
				if ctx.Err() == nil {
					pl.log.Warn("upstream lost", "origin", addr, "err", err, "units", n, "lasted", st.lostAt.Sub(began).Round(time.Millisecond))
				}
				break
			}
			pl.log.Debug("origin cannot serve the stream", "origin", addr, "err", err)
		}
		if progressed {
			continue
		}
		if st.pub != nil && time.Since(st.lostAt) > pl.e.p.NoOriginTimeout {
			pl.log.Warn("no origin has the stream; ending it for players", "waited", time.Since(st.lostAt).Round(time.Millisecond))
			pl.e.ended.Add(1)
			return
		}
		t := time.NewTimer(pl.e.p.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session plays the stream from one origin and feeds the publisher until
// the session ends. It returns the number of units delivered.
func (pl *puller) session(ctx context.Context, addr string, st *pullState) (int, error) {
	dctx, cancel := context.WithTimeout(ctx, pl.e.p.DialTimeout)
	cc, err := rtmp.Dial(dctx, "rtmp://"+addr+"/"+pl.app, rtmp.ClientConfig{
		HandshakeTimeout: pl.e.p.DialTimeout,
		ReadTimeout:      pl.e.p.UpstreamReadTimeout,
		Logger:           pl.log,
	})
	if err != nil {
		cancel()
		return 0, fmt.Errorf("dial origin: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cc.Close() })
	defer stop()
	defer cc.Close()
	err = cc.Play(dctx, pl.name)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("play at origin: %w", err)
	}

	pl.e.sessions.Add(1)
	pl.e.started.Add(1)
	defer pl.e.sessions.Add(-1)
	pl.setOrigin(addr)
	defer pl.setOrigin("")
	st.reb.newSession()
	guard := newRateGuard(pl.e.p.MaxRate, pl.e.p.RateWindow, pl.e.p.RateGrace)
	sawVideo := false
	n := 0
	for {
		msg, err := cc.ReadMessage()
		if err != nil {
			return n, err
		}
		u := st.reb.next(msg)
		if u == nil {
			continue
		}
		if st.pub == nil {
			pub, err := pl.e.p.Hub.Publish(pl.path, stream.PublisherInfo{RemoteAddr: addr, Protocol: "edge-pull"})
			if err != nil {
				return n, err
			}
			st.pub = pub
		}
		if n == 0 {
			pl.noteUpstream(addr, st)
		}
		if u.Header && codecInfo(&st.codec, u) {
			st.pub.SetCodecInfo(st.codec)
		}
		// The pace of the media: video frames, or audio without video.
		if u.Kind == stream.KindVideo {
			sawVideo = true
		}
		if !u.Header && (u.Kind == stream.KindVideo || (u.Kind == stream.KindAudio && !sawVideo)) {
			if err := guard.observe(time.Now(), u.DTS); err != nil {
				return n, err
			}
		}
		if err := st.pub.Write(u); err != nil {
			return n, errPublisherGone
		}
		n++
	}
}

// noteUpstream records the first unit of a session: a failover when another
// session delivered before.
func (pl *puller) noteUpstream(addr string, st *pullState) {
	if st.delivered {
		pl.e.failovers.Add(1)
		pl.mu.Lock()
		pl.failovers++
		pl.mu.Unlock()
		pl.log.Info("upstream switched", "from", st.lastOrigin, "to", addr,
			"gap", time.Since(st.lostAt).Round(time.Millisecond))
	} else {
		pl.log.Info("upstream started", "origin", addr)
	}
	st.delivered = true
	st.lastOrigin = addr
}
