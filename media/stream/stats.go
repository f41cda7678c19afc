package stream

import (
	"sort"
	"time"
)

// StreamInfo is a point-in-time view of one stream, for the relay API.
type StreamInfo struct {
	Path      string        `json:"path"`
	Live      bool          `json:"live"` // a publisher is attached
	Publisher PublisherInfo `json:"publisher"`
	Codec     CodecInfo     `json:"codec"`
	// FPS is the video frame rate measured from the frames' timestamps
	// (0 until a second of video went through, and without a publisher).
	FPS float64 `json:"fps,omitempty"`
	// GOP is the last complete group of pictures: the time between its
	// keyframe and the next one's, from their timestamps, and its frames
	// (zero until two keyframes went through, and without a publisher).
	GOPMillis int64  `json:"gop_ms,omitempty"`
	GOPFrames int    `json:"gop_frames,omitempty"`
	BytesIn   uint64 `json:"bytes_in"`
	BitrateIn uint64 `json:"bitrate_in"` // bits per second, moving average
	Readers   int    `json:"readers"`
	// InternalReaders are the Readers marked ReaderParams.Internal.
	InternalReaders int    `json:"internal_readers"`
	BytesOut        uint64 `json:"bytes_out"`
	Skips           uint64 `json:"skips"`
	Drops           uint64 `json:"drops"`
}

// Totals are hub-wide figures for metrics; the counters only grow.
type Totals struct {
	Streams    int    `json:"streams"`
	Publishers int    `json:"publishers"`
	Readers    int    `json:"readers"`
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	Skips      uint64 `json:"skips"`
	Drops      uint64 `json:"drops"`
	Publishes  uint64 `json:"publishes"`
}

// Streams returns a snapshot of every stream, sorted by path.
func (h *Hub) Streams() []StreamInfo {
	h.mu.Lock()
	list := make([]StreamInfo, 0, len(h.streams))
	for _, s := range h.streams {
		list = append(list, s.infoLocked())
	}
	h.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	return list
}

// Stream returns the snapshot of one stream.
func (h *Hub) Stream(path string) (StreamInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.streams[path]
	if s == nil {
		return StreamInfo{}, false
	}
	return s.infoLocked(), true
}

// Published returns the paths that have a publisher now.
func (h *Hub) Published() []string {
	h.mu.Lock()
	var paths []string
	for p, s := range h.streams {
		if s.pub != nil {
			paths = append(paths, p)
		}
	}
	h.mu.Unlock()
	sort.Strings(paths)
	return paths
}

// EndPublish closes the publisher of path if its PublisherInfo.Tag is tag
// (a newer publisher of the path is left alone) and reports whether it
// did. The publisher's owner sees Done closed, as on a takeover.
func (h *Hub) EndPublish(path, tag string) bool {
	h.mu.Lock()
	s := h.streams[path]
	var p *Publisher
	if s != nil && s.pub != nil && s.info.Tag == tag {
		p = s.pub
	}
	h.mu.Unlock()
	if p == nil {
		return false
	}
	p.Close()
	return true
}

// Totals returns hub-wide figures.
func (h *Hub) Totals() Totals {
	t := Totals{
		BytesIn:   h.totals.bytesIn.Load(),
		BytesOut:  h.totals.bytesOut.Load(),
		Skips:     h.totals.skips.Load(),
		Drops:     h.totals.drops.Load(),
		Publishes: h.totals.publishes.Load(),
	}
	h.mu.Lock()
	t.Streams = len(h.streams)
	for _, s := range h.streams {
		if s.pub != nil {
			t.Publishers++
		}
		t.Readers += s.readerCount()
	}
	h.mu.Unlock()
	return t
}

func (s *stream) infoLocked() StreamInfo {
	si := StreamInfo{
		Path:            s.path,
		Live:            s.pub != nil,
		BytesIn:         s.bytesIn.Load(),
		Readers:         s.readerCount(),
		InternalReaders: s.internalReaderCount(),
		BytesOut:        s.bytesOut.Load(),
		Skips:           s.skips.Load(),
		Drops:           s.drops.Load(),
	}
	if s.pub != nil {
		si.Publisher = s.info
		si.BitrateIn = s.rate.bps.Load()
		si.FPS = s.fps.get()
		si.GOPMillis, si.GOPFrames = s.gop.get()
	}
	if c := s.codec.Load(); c != nil {
		si.Codec = *c
	}
	return si
}

// Uptime is how long the current publisher has been publishing.
func (si StreamInfo) Uptime(now time.Time) time.Duration {
	if !si.Live {
		return 0
	}
	return now.Sub(si.Publisher.Start)
}
