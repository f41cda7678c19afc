package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"
)

// Limits on a load run.
const (
	MaxPlayers          = 5000
	MaxLoadDuration     = 10 * time.Minute
	minWindow           = 2 * time.Second
	defaultConcurrency  = 50
	defaultWarmup       = 2 * time.Second
	defaultKeepUpRatio  = 0.95
	maxDistinctErrors   = 10
	windowEndMargin     = 500 * time.Millisecond
	connectPhaseMaxWait = time.Minute
)

// LoadOpts configures RunLoad.
type LoadOpts struct {
	// URL is the stream to play: rtmp://host:port/app/name, or an
	// HTTP-FLV http://host:port/….flv (see dialFLV).
	URL string
	// Players is how many play sessions to open (1..MaxPlayers).
	Players int
	// Duration is the whole run, from the first connect to the last read.
	Duration time.Duration
	// Warmup separates the last connect from the measurement window;
	// default 2 s.
	Warmup time.Duration
	// ConnectConcurrency bounds connects in flight; default 50.
	ConnectConcurrency int
	// ConnectTimeout bounds each connect and every read; default 10 s.
	ConnectTimeout time.Duration
	// ExpectedBitrate returns the publisher's bits/s between two instants,
	// counted like the players count (FLV tag bytes: payload + 15 per
	// media message). peers.Proc.OutputBitrate of the ffmpeg publisher
	// fits. Required.
	ExpectedBitrate func(from, to time.Time) (float64, error)
	// KeepUpRatio is the share of the expected bitrate a player must
	// receive in the window to count as kept up; default 0.95.
	KeepUpRatio float64
	// OnWindow, when set, is called once as the measurement window starts,
	// with its length (e.g. to profile the server over it).
	OnWindow func(window time.Duration)
}

// PlayerResult is one player's outcome.
type PlayerResult struct {
	Connected     bool          // received its first media message
	Dropped       bool          // lost its connection before the run ended
	Err           string        // why it failed to connect or was dropped
	TimeToPlay    time.Duration // connect to first media message
	SocketBytes   int64         // all bytes read from the socket
	MediaBytes    int64         // audio/video payload bytes
	MediaMessages int64
	VideoMessages int64
	AudioMessages int64
	WindowBitrate float64       // bits/s (FLV tag bytes) inside the window
	WorstLag      time.Duration // see LoadResult.WorstLag
	AcksSent      int64
	Pings         int64
	KeptUp        bool
}

// LoadResult summarises a run.
type LoadResult struct {
	Players   int
	Connected int // received media
	Dropped   int // connected, then lost before the end
	KeptUp    int // received at least KeepUpRatio of the expected bitrate in the window

	WindowStart, WindowEnd time.Time
	// ConnectPhase is from the first connect until every player had
	// connected or failed (or the run or connectPhaseMaxWait ended).
	ConnectPhase    time.Duration
	ExpectedBitrate float64 // publisher bits/s over the window
	MedianBitrate   float64 // median WindowBitrate of connected players
	// WorstLag is the largest lag of any player inside the window. A
	// player's lag is its delay growth behind real time: (wall time since
	// its first media message − media time received since then), minus the
	// smallest such value it has seen (so a burst of cached media at join
	// does not count as negative lag, and any later stall does).
	WorstLag    time.Duration
	SocketBytes int64 // bytes read by all players over the whole run
	// ClientCPUSeconds is this process's own CPU time (utime+stime, not its
	// children) over the run: when it nears Duration × cores, the load
	// client, not the server, limits the result.
	ClientCPUSeconds float64
	Errors           []string // distinct errors, at most 10
	PerPlayer        []PlayerResult
}

// RunLoad opens o.Players play sessions on o.URL, reads until o.Duration
// has passed and reports who connected, who kept up and the worst lag.
func RunLoad(ctx context.Context, o LoadOpts) (LoadResult, error) {
	if o.Players < 1 || o.Players > MaxPlayers {
		return LoadResult{}, fmt.Errorf("players %d out of range 1..%d", o.Players, MaxPlayers)
	}
	if o.Duration <= 0 || o.Duration > MaxLoadDuration {
		return LoadResult{}, fmt.Errorf("duration %s out of range (0, %s]", o.Duration, MaxLoadDuration)
	}
	if o.ExpectedBitrate == nil {
		return LoadResult{}, errors.New("ExpectedBitrate is required")
	}
	dial := dialPlay
	if isFLVURL(o.URL) {
		dial = dialFLV
		if _, _, err := flvTarget(o.URL); err != nil {
			return LoadResult{}, err
		}
	} else if _, _, _, _, err := playTarget(o.URL); err != nil {
		return LoadResult{}, err
	}
	conc := o.ConnectConcurrency
	if conc <= 0 {
		conc = defaultConcurrency
	}
	warmup := o.Warmup
	if warmup <= 0 {
		warmup = defaultWarmup
	}
	ratio := o.KeepUpRatio
	if ratio <= 0 {
		ratio = defaultKeepUpRatio
	}

	cpu0, _, cpuErr := readStat(os.Getpid())
	start := time.Now()
	end := start.Add(o.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	players := make([]*player, o.Players)
	results := make([]PlayerResult, o.Players)
	var connectWG, runWG sync.WaitGroup
	sem := make(chan struct{}, conc)
	connectWG.Add(o.Players)
	runWG.Add(o.Players)
	for i := range o.Players {
		go func() {
			defer runWG.Done()
			res := &results[i]
			select {
			case sem <- struct{}{}:
			case <-runCtx.Done():
				res.Err = "run ended before connect"
				connectWG.Done()
				return
			}
			t0 := time.Now()
			p, err := dial(runCtx, o.URL, o.ConnectTimeout)
			<-sem
			if err != nil {
				res.Err = err.Error()
				connectWG.Done()
				return
			}
			res.Connected, res.TimeToPlay = true, time.Since(t0)
			players[i] = p
			connectWG.Done()
			err = p.run(runCtx)
			if runCtx.Err() == nil {
				res.Dropped, res.Err = true, fmt.Sprintf("dropped: %v", err)
			}
		}()
	}

	// Measurement window: from Warmup after the last connect to just
	// before the end.
	connected := make(chan struct{})
	go func() { connectWG.Wait(); close(connected) }()
	select {
	case <-connected:
	case <-runCtx.Done():
	case <-time.After(connectPhaseMaxWait):
	}
	res := LoadResult{Players: o.Players, ConnectPhase: time.Since(start)}
	res.WindowStart = time.Now().Add(warmup)
	res.WindowEnd = end.Add(-windowEndMargin)
	if res.WindowEnd.Sub(res.WindowStart) < minWindow {
		cancel()
		runWG.Wait()
		return res, fmt.Errorf("measurement window too short: connecting %d players took %s of %s",
			o.Players, time.Since(start).Round(time.Millisecond), o.Duration)
	}
	ready := make([]*player, o.Players)
	select {
	case <-connected:
		copy(ready, players) // connectWG.Wait happened-before: safe to read
	default:
		// Some connects are still pending: only players that had connected
		// by now are measured; the rest count as not connected.
	}
	startBytes := make([]int64, o.Players)
	if !sleepUntil(runCtx, res.WindowStart) {
		cancel()
		runWG.Wait()
		return res, fmt.Errorf("run ended before the window: %w", runCtx.Err())
	}
	for i, p := range ready {
		if p != nil {
			startBytes[i] = p.flvBytes.Load()
			p.lagFrom.Store(res.WindowStart.UnixNano())
		}
	}
	if o.OnWindow != nil {
		o.OnWindow(res.WindowEnd.Sub(res.WindowStart))
	}
	sleepUntil(runCtx, res.WindowEnd)
	endBytes := make([]int64, o.Players)
	for i, p := range ready {
		if p != nil {
			endBytes[i] = p.flvBytes.Load()
		}
	}
	<-runCtx.Done()
	runWG.Wait()
	if cpu1, _, err := readStat(os.Getpid()); err == nil && cpuErr == nil {
		res.ClientCPUSeconds = cpu1 - cpu0
	}
	if ctx.Err() != nil {
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
	for i := range results {
		r := &results[i]
		if p := players[i]; p != nil {
			r.SocketBytes = int64(p.cr.n)
			r.MediaBytes, r.MediaMessages = p.mediaBytes, p.mediaMsgs
			r.VideoMessages, r.AudioMessages = p.videoMsgs, p.audioMsgs
			r.WorstLag, r.AcksSent, r.Pings = p.worstLag, p.acksSent, p.pings
			res.SocketBytes += r.SocketBytes
		}
		if r.Connected {
			res.Connected++
		}
		if r.Dropped {
			res.Dropped++
		}
		if ready[i] != nil {
			r.WindowBitrate = float64(endBytes[i]-startBytes[i]) * 8 / win
			rates = append(rates, r.WindowBitrate)
			r.KeptUp = !r.Dropped && r.WindowBitrate >= ratio*exp
			res.WorstLag = max(res.WorstLag, r.WorstLag)
		}
		if r.KeptUp {
			res.KeptUp++
		}
		if r.Err != "" && !errSeen[r.Err] && len(errSeen) < maxDistinctErrors {
			errSeen[r.Err] = true
			res.Errors = append(res.Errors, r.Err)
		}
	}
	if len(rates) > 0 {
		sort.Float64s(rates)
		res.MedianBitrate = rates[len(rates)/2]
	}
	res.PerPlayer = results
	return res, nil
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run reads messages until ctx ends or the connection fails.
func (p *player) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.conn.Close() })
	defer stop()
	defer p.conn.Close()
	next := p.readMessage
	if p.flv != nil {
		next = p.readFLVTag
	}
	for {
		m, err := next()
		if err != nil {
			return err
		}
		if m.isMedia {
			p.onMedia(m)
		}
	}
}

// onMedia counts a media message and updates the lag.
func (p *player) onMedia(m message) {
	ts := m.timestamp
	switch m.typeID {
	case msgAudio:
		p.audioMsgs++
		p.mediaMsgs++
		p.mediaBytes += int64(m.length)
		p.flvBytes.Add(int64(m.length) + flvTagOverhead)
	case msgVideo:
		p.videoMsgs++
		p.mediaMsgs++
		p.mediaBytes += int64(m.length)
		p.flvBytes.Add(int64(m.length) + flvTagOverhead)
	case msgAggregate:
		ts = p.countAggregate(m)
	}
	now := time.Now()
	if !p.haveMedia {
		p.haveMedia, p.firstMedia, p.lastTS = true, now, ts
		return
	}
	p.maxTS += int64(int32(ts - p.lastTS)) // wrap-aware step
	p.lastTS = ts
	progress := time.Duration(p.maxTS) * time.Millisecond
	offset := now.Sub(p.firstMedia) - progress
	if offset < p.minOffset {
		p.minOffset = offset
	}
	if now.UnixNano() >= p.lagFrom.Load() {
		p.worstLag = max(p.worstLag, offset-p.minOffset)
	}
}

// countAggregate counts the FLV tags inside an aggregate message and returns
// the timestamp of the last one (rebased on the message timestamp).
func (p *player) countAggregate(m message) uint32 {
	b := m.payload
	var first uint32
	last := m.timestamp
	for i := 0; len(b) >= 11; i++ {
		size := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ts := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24
		if uint64(size)+15 > uint64(len(b)) {
			break
		}
		if i == 0 {
			first = ts
		}
		last = m.timestamp + (ts - first)
		switch b[0] {
		case msgAudio:
			p.audioMsgs++
		case msgVideo:
			p.videoMsgs++
		}
		p.mediaMsgs++
		p.mediaBytes += int64(size)
		p.flvBytes.Add(int64(size) + flvTagOverhead)
		b = b[11+size+4:]
	}
	return last
}
