// Package rtmpplayer is an RTMP viewer for end-to-end and cluster tests: it
// plays one stream with media/rtmp's play client and measures what a viewer
// would notice (arrival gaps, timestamps going backwards, disconnects).
package rtmpplayer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/media/rtmp"
)

// Player plays one stream with media/rtmp's play client and measures
// what a viewer would notice: arrival gaps between media messages and DTS
// order per track.
type Player struct {
	name string
	done chan struct{}
	cc   *rtmp.ClientConn

	mu        sync.Mutex
	messages  int
	videoKeys int
	lastAt    time.Time
	maxGap    time.Duration // largest gap between two media messages since the last reset
	gapAt     time.Time     // when the largest gap ended
	unwrap    map[uint8]*rtmp.TimestampUnwrapper
	lastDTS   map[uint8]int64
	backwards int // DTS that went backwards within a track
	err       error
}

// Start dials url (rtmp://host:port/app) and plays name until ctx
// ends or the server ends the stream.
func Start(t testing.TB, ctx context.Context, url, name string) (*Player, error) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc, err := rtmp.Dial(dctx, url, rtmp.ClientConfig{ReadTimeout: 15 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := cc.Play(dctx, name); err != nil {
		cc.Close()
		return nil, err
	}
	p := &Player{name: url + "/" + name, done: make(chan struct{}), cc: cc,
		unwrap: map[uint8]*rtmp.TimestampUnwrapper{}, lastDTS: map[uint8]int64{}}
	stop := context.AfterFunc(ctx, func() { cc.Close() })
	t.Cleanup(func() { cc.Close(); <-p.done })
	go func() {
		defer close(p.done)
		defer stop()
		for {
			msg, err := cc.ReadMessage()
			if err != nil {
				p.mu.Lock()
				if ctx.Err() == nil {
					p.err = err
				}
				p.mu.Unlock()
				return
			}
			p.record(msg, time.Now())
		}
	}()
	return p, nil
}

func (p *Player) record(msg rtmp.Message, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if msg.Type != rtmp.TypeVideo && msg.Type != rtmp.TypeAudio {
		return
	}
	p.messages++
	if msg.Type == rtmp.TypeVideo && len(msg.Payload) > 1 && msg.Payload[0]>>4 == 1 && msg.Payload[1] == 1 {
		p.videoKeys++
	}
	if !p.lastAt.IsZero() && now.Sub(p.lastAt) > p.maxGap {
		p.maxGap, p.gapAt = now.Sub(p.lastAt), now
	}
	p.lastAt = now
	u := p.unwrap[msg.Type]
	if u == nil {
		u = &rtmp.TimestampUnwrapper{}
		p.unwrap[msg.Type] = u
	}
	dts := u.Unwrap(msg.Timestamp)
	if last, ok := p.lastDTS[msg.Type]; ok && dts < last {
		p.backwards++
	}
	p.lastDTS[msg.Type] = dts
}

// Stats returns messages received, the largest gap, backwards steps and
// the error that ended playback (nil while playing).
func (p *Player) Stats() (messages int, maxGap time.Duration, backwards int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.messages, p.maxGap, p.backwards, p.err
}

// ResetGap forgets the largest gap so far (to measure one event).
func (p *Player) ResetGap() {
	p.mu.Lock()
	p.maxGap, p.gapAt = 0, time.Time{}
	p.mu.Unlock()
}

// Close ends playback and waits for the reading goroutine.
func (p *Player) Close() {
	p.cc.Close()
	<-p.done
}

// Done is closed when playback ended.
func (p *Player) Done() <-chan struct{} { return p.done }

// Playing reports whether the player is still connected.
func (p *Player) Playing() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// WaitMessages waits until the player received at least n media messages.
func (p *Player) WaitMessages(ctx context.Context, n int) error {
	for {
		m, _, _, err := p.Stats()
		if m >= n {
			return nil
		}
		if !p.Playing() {
			return fmt.Errorf("player %s ended after %d messages: %v", p.name, m, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("player %s: %d of %d messages: %w", p.name, m, n, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
