// Command portier runs every role of the Portier live-streaming platform:
// the control plane, media relays, concierges and the all-in-one `run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"run", "all roles in one process on SQLite (the embedded default)", runAll},
		{"serve", "the control plane (web UI, REST API, hooks, scheduler)", runServe},
		{"relay", "an RTMP/HTTP-FLV media relay (--role origin|edge)", runRelay},
		{"hls-origin", "the HLS origin: stores the playlists and segments HLS tasks upload", runHLSOrigin},
		{"cdn-edge", "a CDN edge: caches HLS from the origins for viewers with signed URLs", runCDNEdge},
		{"concierge", "a worker daemon that runs ffmpeg tasks under supervisord", runConcierge},
		{"user", "manage users: portier user add|passwd|list", runUser},
		{"token", "manage API tokens: portier token add --username U", runToken},
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	if os.Args[1] == "--version" || os.Args[1] == "version" {
		fmt.Println("portier", version())
		return
	}
	for _, c := range commands() {
		if c.name != os.Args[1] {
			continue
		}
		if c.name == "run" || c.name == "relay" {
			mediaGC()
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := c.run(ctx, os.Args[2:])
		stop()
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "portier %s: %v\n", c.name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "portier: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

// mediaGCPercent is the garbage collector's target for processes that relay
// media (unless GOGC says otherwise): a relay's live heap is mostly
// per-player state, so the default of 100 lets its peak heap reach twice
// that. 1000 RTMP players at 2 Mbps: 43 KB of peak RSS per player at 100,
// 34 KB at 50 (31.6 KB at 25), at the same CPU per delivered Gbit
// (docs/benchmarks.md, "Memory per player").
const mediaGCPercent = 50

// mediaGC applies mediaGCPercent when the environment does not set GOGC.
func mediaGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(mediaGCPercent)
	}
}

// version is the module version and VCS revision the binary was built
// from, with the Go version: what `portier --version` prints.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v, rev, dirty := bi.Main.Version, "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v + " " + bi.GoVersion
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: portier COMMAND [options]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(os.Stderr, "\nEvery option can also be set as PORTIER_<OPTION> or in a YAML file given with --config.")
	fmt.Fprintln(os.Stderr, "portier --version prints the version.")
}
