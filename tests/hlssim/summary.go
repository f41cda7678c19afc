package hlssim

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Summary is a Run's outcome in numbers.
type Summary struct {
	Viewers, Failed   int
	Segments          int            // segment requests that succeeded
	PerEdge           map[string]int // segment requests per edge host
	DistinctPerEdge   map[string]int // distinct segments each edge served
	MaxOverAvg        float64        // the busiest edge's requests over the average
	EdgesPerViewer    float64        // mean distinct edges a viewer used
	SwitchesPerViewer float64        // mean edge changes between consecutive segments
	Discarded         int            // reloads discarded by the mismatch rule
	SegmentErrors     int
	Stalled           int           // viewers with at least one delivery stall
	MaxStalls         int           // most delivery stalls of one viewer
	MaxStall          time.Duration // longest delivery stall of any viewer
	SourceStalls      int           // stalls waiting for the source (see Stall.Source), all viewers
	MaxSourceStall    time.Duration
	Target            time.Duration
}

// Summarize computes a Summary of the window [since, until) (zero until:
// no end): stalls and requests outside it are left out.
func (r *Result) Summarize(since, until time.Time) Summary {
	in := func(t time.Time) bool { return !t.Before(since) && (until.IsZero() || t.Before(until)) }
	s := Summary{Viewers: len(r.Viewers), PerEdge: map[string]int{}, DistinctPerEdge: map[string]int{}}
	distinct := map[string]map[string]bool{}
	var edges, switches float64
	for _, v := range r.Viewers {
		if v.Err != nil || v.Segments == 0 {
			s.Failed++
			continue
		}
		s.Target = max(s.Target, v.Target)
		s.Discarded += v.Discarded
		s.SegmentErrors += v.SegmentErrors
		used := map[string]bool{}
		last := ""
		for _, q := range v.Requests {
			if !in(q.At) {
				continue
			}
			s.Segments++
			s.PerEdge[q.Host]++
			used[q.Host] = true
			if last != "" && last != q.Host {
				switches++
			}
			last = q.Host
			if distinct[q.Host] == nil {
				distinct[q.Host] = map[string]bool{}
			}
			distinct[q.Host][q.Path] = true
		}
		edges += float64(len(used))
		n := 0
		for _, st := range v.Stalls {
			if !in(st.At) {
				continue
			}
			if st.Source {
				s.SourceStalls++
				s.MaxSourceStall = max(s.MaxSourceStall, st.Duration)
				continue
			}
			n++
			s.MaxStall = max(s.MaxStall, st.Duration)
		}
		if n > 0 {
			s.Stalled++
		}
		s.MaxStalls = max(s.MaxStalls, n)
	}
	for h, d := range distinct {
		s.DistinctPerEdge[h] = len(d)
	}
	ok := float64(s.Viewers - s.Failed)
	if ok > 0 {
		s.EdgesPerViewer, s.SwitchesPerViewer = edges/ok, switches/ok
	}
	if len(s.PerEdge) > 0 {
		mx := 0
		for _, n := range s.PerEdge {
			mx = max(mx, n)
		}
		s.MaxOverAvg = float64(mx) / (float64(s.Segments) / float64(len(s.PerEdge)))
	}
	return s
}

// Bound is ⌈c · average⌉ of the requests per edge over n edges.
func (s Summary) Bound(c float64, n int) int {
	return int(math.Ceil(c * float64(s.Segments) / float64(n)))
}

func (s Summary) String() string {
	hosts := make([]string, 0, len(s.PerEdge))
	for h := range s.PerEdge {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	per := ""
	for _, h := range hosts {
		per += fmt.Sprintf(" %s=%d(%d distinct)", h, s.PerEdge[h], s.DistinctPerEdge[h])
	}
	return fmt.Sprintf("viewers %d (failed %d), segments %d, per edge:%s; max/avg %.2f; edges/viewer %.2f, edge switches/viewer %.1f; "+
		"discarded reloads %d, segment errors %d; viewers stalled %d, max stalls/viewer %d, longest stall %v (target %v); source stalls %d (longest %v)",
		s.Viewers, s.Failed, s.Segments, per, s.MaxOverAvg, s.EdgesPerViewer, s.SwitchesPerViewer,
		s.Discarded, s.SegmentErrors, s.Stalled, s.MaxStalls, s.MaxStall.Round(time.Millisecond), s.Target, s.SourceStalls, s.MaxSourceStall.Round(time.Millisecond))
}
