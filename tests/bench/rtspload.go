package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// The RTSP load client: N gortsplib players over UDP (no TCP fallback),
// each counting the RTP packets and bytes it receives and, from the
// sequence numbers, the packets it missed. It is the RTSP counterpart of
// RunLoad and is measured the same way: a run of fixed length, a window
// after the last connect, keep-up against the publisher's own bitrate.

// rtspUDPReadBuffer is each player socket's receive buffer (the OS caps
// it at net.core.rmem_max): players should not be the ones losing packets.
const rtspUDPReadBuffer = 1 << 20

// maxLossKeptUp is the share of packets a player may miss in the window
// and still count as kept up.
const maxLossKeptUp = 0.01

// RTSPLoadOpts configures RunRTSPLoad.
type RTSPLoadOpts struct {
	// URL is rtsp://host:port/path of the stream to play.
	URL string
	// Players is how many sessions to open (1..MaxPlayers).
	Players int
	// Duration is the whole run, from the first connect to the last read.
	Duration time.Duration
	// Warmup separates the last connect from the window (default 2 s).
	Warmup time.Duration
	// ConnectConcurrency bounds connects in flight (default 50).
	ConnectConcurrency int
	// ConnectTimeout bounds each RTSP request and the silence after which
	// a player counts as dropped (default 10 s).
	ConnectTimeout time.Duration
	// ExpectedBitrate is the publisher's bits/s between two instants
	// (peers.Proc.OutputBitrate). Required.
	ExpectedBitrate func(from, to time.Time) (float64, error)
	// KeepUpRatio: a player kept up if it received at least this share of
	// the expected bitrate in RTP bytes and missed at most 1 % of its
	// packets in the window (default 0.95).
	KeepUpRatio float64
}

// RTSPLoadResult summarises a run.
type RTSPLoadResult struct {
	Players, Connected, Dropped, KeptUp int
	WindowStart, WindowEnd              time.Time
	ExpectedBitrate                     float64 // publisher bits/s over the window
	MedianBitrate                       float64 // median RTP bits/s of players in the window
	// Packets and Bytes (RTP header and payload, no UDP/IP) received by
	// all players over the whole run; WindowLost the packets missing from
	// their sequence numbers in the window, of WindowPackets received.
	Packets, Bytes            int64
	WindowPackets, WindowLost int64
	ClientCPUSeconds          float64
	Errors                    []string
}

// rtspPlayer is one session and its counters; the RTP callbacks of its
// tracks run on gortsplib's goroutines.
type rtspPlayer struct {
	c       *gortsplib.Client
	done    chan struct{}
	err     error
	closing atomic.Bool

	packets, bytes, lost atomic.Int64
	mu                   sync.Mutex // guards seq
	seq                  map[*description.Media]uint16
}

func (p *rtspPlayer) onPacket(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
	p.packets.Add(1)
	p.bytes.Add(int64(pkt.MarshalSize()))
	p.mu.Lock()
	last, ok := p.seq[medi]
	// Packets come out of gortsplib's reorder buffer in order; a forward
	// jump is loss, anything else (a duplicate, a restart) is not.
	if d := pkt.SequenceNumber - last; ok && d > 1 && d < 0x8000 {
		p.lost.Add(int64(d - 1))
	}
	p.seq[medi] = pkt.SequenceNumber
	p.mu.Unlock()
}

// dialRTSPPlay opens one UDP play session on u.
func dialRTSPPlay(u *base.URL, timeout time.Duration) (*rtspPlayer, error) {
	tr := gortsplib.TransportUDP
	p := &rtspPlayer{done: make(chan struct{}), seq: map[*description.Media]uint16{},
		c: &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, ReadTimeout: timeout, WriteTimeout: timeout,
			InitialUDPReadTimeout: timeout, UDPReadBufferSize: rtspUDPReadBuffer}}
	if err := p.c.Start2(); err != nil {
		return nil, err
	}
	desc, _, err := p.c.Describe(u)
	if err == nil {
		err = p.c.SetupAll(desc.BaseURL, desc.Medias)
	}
	if err == nil {
		p.c.OnPacketRTPAny(p.onPacket)
		_, err = p.c.Play(nil)
	}
	if err != nil {
		p.c.Close()
		return nil, err
	}
	go func() { p.err = p.c.Wait(); close(p.done) }()
	return p, nil
}

func (p *rtspPlayer) close() {
	p.closing.Store(true)
	p.c.Close()
	<-p.done
}

// dropped reports whether the session ended before close.
func (p *rtspPlayer) dropped() (bool, error) {
	select {
	case <-p.done:
		return !p.closing.Load(), p.err
	default:
		return false, nil
	}
}

type rtspCounts struct{ packets, bytes, lost int64 }

func (p *rtspPlayer) counts() rtspCounts {
	return rtspCounts{p.packets.Load(), p.bytes.Load(), p.lost.Load()}
}

// RunRTSPLoad opens o.Players UDP play sessions on o.URL, reads until
// o.Duration has passed and reports who connected, who kept up and what
// was lost.
func RunRTSPLoad(ctx context.Context, o RTSPLoadOpts) (RTSPLoadResult, error) {
	res := RTSPLoadResult{Players: o.Players}
	if o.Players < 1 || o.Players > MaxPlayers {
		return res, fmt.Errorf("players %d out of range 1..%d", o.Players, MaxPlayers)
	}
	if o.Duration <= 0 || o.Duration > MaxLoadDuration {
		return res, fmt.Errorf("duration %s out of range (0, %s]", o.Duration, MaxLoadDuration)
	}
	if o.ExpectedBitrate == nil {
		return res, errors.New("ExpectedBitrate is required")
	}
	u, err := base.ParseURL(o.URL)
	if err != nil || u.Scheme != "rtsp" {
		return res, fmt.Errorf("play URL %q: want rtsp://host:port/path", o.URL)
	}
	conc := cmpOr(o.ConnectConcurrency, defaultConcurrency)
	timeout := cmpOr(o.ConnectTimeout, 10*time.Second)
	ratio := cmpOr(o.KeepUpRatio, defaultKeepUpRatio)

	cpu0, _, cpuErr := readStat(os.Getpid())
	start := time.Now()
	end := start.Add(o.Duration)
	players := make([]*rtspPlayer, o.Players)
	errs := make([]error, o.Players)
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	for i := range o.Players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if time.Now().After(end) || ctx.Err() != nil {
				errs[i] = errors.New("run ended before connect")
				return
			}
			players[i], errs[i] = dialRTSPPlay(u, timeout)
		}()
	}
	wg.Wait() // each connect is bounded by timeout (a few requests)
	if !slices.ContainsFunc(players, func(p *rtspPlayer) bool { return p != nil }) {
		return res, fmt.Errorf("no player connected: %w", errors.Join(errs...))
	}
	defer func() {
		for _, p := range players {
			if p != nil {
				p.close()
			}
		}
	}()
	res.WindowStart = time.Now().Add(cmpOr(o.Warmup, defaultWarmup))
	res.WindowEnd = end.Add(-windowEndMargin)
	if res.WindowEnd.Sub(res.WindowStart) < minWindow {
		return res, fmt.Errorf("measurement window too short: connecting %d players took %s of %s",
			o.Players, time.Since(start).Round(time.Millisecond), o.Duration)
	}
	if !sleepUntil(ctx, res.WindowStart) {
		return res, fmt.Errorf("run ended before the window: %w", ctx.Err())
	}
	first := make([]rtspCounts, o.Players)
	for i, p := range players {
		if p != nil {
			first[i] = p.counts()
		}
	}
	sleepUntil(ctx, res.WindowEnd)
	last := make([]rtspCounts, o.Players)
	for i, p := range players {
		if p != nil {
			last[i] = p.counts()
		}
	}
	if !sleepUntil(ctx, end) {
		return res, fmt.Errorf("load run cancelled: %w", ctx.Err())
	}
	exp, err := o.ExpectedBitrate(res.WindowStart, res.WindowEnd)
	if err != nil {
		return res, fmt.Errorf("expected bitrate: %w", err)
	}
	res.ExpectedBitrate = exp
	win := res.WindowEnd.Sub(res.WindowStart).Seconds()
	errSeen := map[string]bool{}
	var rates []float64
	for i, p := range players {
		e := errs[i]
		if p != nil {
			res.Connected++
			c := p.counts()
			res.Packets += c.packets
			res.Bytes += c.bytes
			pk, lost := last[i].packets-first[i].packets, last[i].lost-first[i].lost
			res.WindowPackets += pk
			res.WindowLost += lost
			rate := float64(last[i].bytes-first[i].bytes) * 8 / win
			rates = append(rates, rate)
			dropped, derr := p.dropped()
			if dropped {
				res.Dropped++
				e = fmt.Errorf("dropped: %w", derr)
			}
			if !dropped && rate >= ratio*exp && float64(lost) <= maxLossKeptUp*float64(pk+lost) {
				res.KeptUp++
			}
		}
		if e != nil && !errSeen[e.Error()] && len(errSeen) < maxDistinctErrors {
			errSeen[e.Error()] = true
			res.Errors = append(res.Errors, e.Error())
		}
	}
	if len(rates) > 0 {
		sort.Float64s(rates)
		res.MedianBitrate = rates[len(rates)/2]
	}
	if cpu1, _, err := readStat(os.Getpid()); err == nil && cpuErr == nil {
		res.ClientCPUSeconds = cpu1 - cpu0
	}
	return res, nil
}

// cmpOr returns v, or def when v is zero or negative.
func cmpOr[T int | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
