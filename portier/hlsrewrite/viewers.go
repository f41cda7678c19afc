package hlsrewrite

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// viewerSeconds is how far back, in seconds, media playlist requests
// count as viewers (one ring bucket per second).
const viewerSeconds = 10

const viewerWindow = viewerSeconds * time.Second

// viewerCounter estimates each stream's HLS viewers from its media playlist
// requests: a playing viewer reloads one media playlist about once per
// target duration, so the requests of the last viewerWindow, times the
// target duration, over the window, are its viewers.
type viewerCounter struct {
	mu      sync.Mutex
	streams map[int64]*streamRequests
}

// streamRequests counts one stream's media playlist requests per second
// in a ring of viewerWindow seconds.
type streamRequests struct {
	app, name string
	target    time.Duration
	sec       [viewerSeconds]int64 // unix second of each bucket
	n         [viewerSeconds]int
}

func (c *viewerCounter) add(id int64, app, name string, target time.Duration, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams == nil {
		c.streams = map[int64]*streamRequests{}
	}
	s := c.streams[id]
	if s == nil {
		s = &streamRequests{}
		c.streams[id] = s
	}
	s.app, s.name = app, name
	if target > 0 {
		s.target = target
	}
	u := now.Unix()
	i := int(u % viewerSeconds)
	if s.sec[i] != u {
		s.sec[i], s.n[i] = u, 0
	}
	s.n[i]++
}

// StreamViewers is one stream's HLS viewers as the rewriter estimates them.
type StreamViewers struct {
	StreamID  int64
	App, Name string
	Viewers   int
}

// Viewers estimates each stream's HLS viewers from the media playlist
// requests of the last 10 s (most watched first); streams without requests
// in that time are left out.
func (r *Rewriter) Viewers() []StreamViewers { return r.viewers.snapshot(r.p.Now()) }

func (c *viewerCounter) snapshot(now time.Time) []StreamViewers {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []StreamViewers
	u := now.Unix()
	for id, s := range c.streams {
		total := 0
		for i, sec := range s.sec {
			if sec > u-viewerSeconds && sec <= u {
				total += s.n[i]
			}
		}
		if total == 0 {
			delete(c.streams, id)
			continue
		}
		target := s.target
		if target <= 0 {
			target = 2 * time.Second
		}
		v := int(float64(total)*target.Seconds()/viewerWindow.Seconds() + 0.5)
		out = append(out, StreamViewers{StreamID: id, App: s.app, Name: s.name, Viewers: max(1, v)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Viewers != out[j].Viewers {
			return out[i].Viewers > out[j].Viewers
		}
		return out[i].StreamID < out[j].StreamID
	})
	return out
}

// viewersCollector exports Viewers as portier_hls_viewers{stream}.
type viewersCollector struct {
	r    *Rewriter
	desc *prometheus.Desc
}

func (c viewersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c viewersCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.r.Viewers() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v.Viewers), v.App+"/"+v.Name)
	}
}
