package rtp

import (
	"slices"
	"testing"

	pionrtp "github.com/pion/rtp"
)

func TestReorderer(t *testing.T) {
	tests := []struct {
		name      string
		in        []uint16
		out       []uint16
		skipped   int
		discarded int
	}{
		{"in order", []uint16{10, 11, 12}, []uint16{10, 11, 12}, 0, 0},
		{"swap", []uint16{10, 12, 11, 13}, []uint16{10, 11, 12, 13}, 0, 0},
		{"duplicate released", []uint16{10, 11, 11, 12}, []uint16{10, 11, 12}, 0, 1},
		{"duplicate held", []uint16{10, 12, 12, 11}, []uint16{10, 11, 12}, 0, 1},
		{"wrap", []uint16{65534, 0, 65535, 1}, []uint16{65534, 65535, 0, 1}, 0, 0},
		// Buffer of 4: 11 is given up when 15 arrives; its late arrival is discarded.
		{"late", []uint16{10, 12, 13, 14, 15, 11, 16}, []uint16{10, 12, 13, 14, 15, 16}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReorderer(4)
			var out []uint16
			var skipped, discarded int
			for _, seq := range tt.in {
				pkts, s, d := r.Process(&pionrtp.Packet{Header: pionrtp.Header{SequenceNumber: seq}})
				for _, p := range pkts {
					out = append(out, p.SequenceNumber)
				}
				skipped += s
				if d {
					discarded++
				}
			}
			if !slices.Equal(out, tt.out) || skipped != tt.skipped || discarded != tt.discarded {
				t.Fatalf("out %v skipped %d discarded %d, want %v %d %d", out, skipped, discarded, tt.out, tt.skipped, tt.discarded)
			}
		})
	}
}
