package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/portier/portier/concierge"
)

// runConcierge runs `portier concierge`: the worker daemon that runs the
// control plane's ffmpeg tasks under supervisord.
func runConcierge(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("concierge", flag.ContinueOnError)
	control := fs.String("control", "", "control plane base URL, e.g. http://control:8080 (required)")
	token := fs.String("cluster-token", "", "cluster token for the control plane's node API")
	name := fs.String("name", defaultNodeName(), "node name shown by the control plane")
	supURL := fs.String("supervisor-url", "", "drive an existing supervisord at http://HOST:PORT or unix:///path.sock instead of starting an embedded one")
	supInclude := fs.String("supervisor-include-dir", "", "with --supervisor-url: the directory its [include] files= glob reads (*.conf); one file per task goes there")
	supBinary := fs.String("supervisord", "", "supervisord binary for the embedded one (default: bin/supervisord next to portier, else supervisord on PATH)")
	capacity := fs.Int("capacity", 0, "task-cost budget of this host (default: number of CPUs)")
	labels := fs.String("labels", "", "node labels k=v,k2=v2 that tasks can require")
	dataDir := fs.String("data-dir", "./concierge-data", "directory for the embedded supervisord, its config and task logs")
	relayRTMP := fs.String("relay-rtmp", "", "relay near this host, host:port or rtmp://host:port (announced to the control plane; given to tasks as PORTIER_RELAY_RTMP)")
	ffmpeg := fs.String("ffmpeg", "ffmpeg", "ffmpeg binary (name on PATH or path)")
	httpAddr := fs.String("http-addr", ":8082", "HTTP listen address for /healthz, /readyz and /metrics (empty: none)")
	drain := fs.Duration("drain-timeout", 20*time.Second, "on SIGTERM, how long to wait for handed-back tasks to run elsewhere before stopping them")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	if *control == "" {
		return fmt.Errorf("--control is required: the control plane's base URL, e.g. http://127.0.0.1:8080")
	}
	lab, err := parseLabels(*labels)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	c, err := concierge.New(concierge.Params{
		Control: *control, ClusterToken: *token, Name: *name, Capacity: *capacity, Labels: lab,
		RelayRTMP: strings.TrimSuffix(strings.TrimPrefix(*relayRTMP, "rtmp://"), "/"), SupervisorURL: *supURL, SupervisorIncludeDir: *supInclude, SupervisorBinary: *supBinary,
		DataDir: *dataDir, FFmpeg: *ffmpeg, DrainTimeout: *drain, HTTPAddr: *httpAddr, Logger: logger,
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// parseLabels parses k=v,k2=v2.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--labels %q: want k=v,k2=v2", s)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
