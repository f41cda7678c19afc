package bench

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// noHTTPFLV says why a registered fan-out server is missing from the
// HTTP-FLV table, for the servers known to have no HTTP-FLV.
var noHTTPFLV = map[string]string{
	"nginx-rtmp": "nginx-rtmp has no HTTP-FLV (its nginx-http-flv fork is not packaged for Debian)",
	"mediamtx":   "MediaMTX has no HTTP-FLV",
}

// BenchmarkHTTPFLVFanout is BenchmarkRTMPFanoutPeers with HTTP-FLV players:
// the same 2 Mbps H.264+AAC stream published over RTMP, played by N
// HTTP-FLV players of the benchmark's load client (counted like its RTMP
// players) on every RegisterFanoutServer server whose FanoutTarget has an
// FLVURL; the others are started once, found without one and skipped.
// Select a server with -bench 'HTTPFLVFanout/portier'. N comes from
// PORTIER_BENCH_N, the run length from PORTIER_BENCH_SECONDS; each
// (server, N) runs once whatever b.N is, and the table is printed at the
// end. Run it with -bench 'HTTPFLVFanout|RTMPFanoutPeers/portier' to
// compare the two protocols on our relay in one invocation (go test splits
// the pattern at the slash: HTTPFLVFanout is then run on portier only).
func BenchmarkHTTPFLVFanout(b *testing.B) {
	sizes, dur := benchSizesAndDuration(b)
	out, skipped := fanoutMatrix(b, sizes, dur, func(t FanoutTarget) (FanoutTarget, bool) {
		t.PlayURL = t.FLVURL
		return t, t.FLVURL != ""
	})
	// One line for each server without a row that is known to have no
	// HTTP-FLV or was found so, whether or not -bench selected it.
	var notes []string
	for _, srv := range FanoutServers() {
		note := noHTTPFLV[srv.Name]
		if note == "" && skipped[srv.Name] {
			note = srv.Name + " has no HTTP-FLV play URL"
		}
		if note != "" {
			notes = append(notes, note+".")
		}
	}
	sort.Strings(notes)
	fmt.Fprintf(os.Stdout, "\nHTTP-FLV fan-out, one %d kbit/s stream published over RTMP, %s per run:\n%s%s\n",
		(FanoutVideoBitrate+FanoutAudioBitrate)/1000, dur, FormatFanoutTable(out), strings.Join(notes, "\n"))
}
