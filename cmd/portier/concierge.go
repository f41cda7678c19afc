package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/portier/portier/concierge"
)

// conciergeConfig is the configuration of `portier concierge`, the worker
// daemon that runs the control plane's ffmpeg tasks under supervisord (an
// embedded one, or an existing one at SupervisorURL).
type conciergeConfig struct {
	Control              string
	ClusterToken         string
	Name                 string // empty: HOST-concierge[-PORT] (roleNodeName)
	SupervisorURL        string // empty: start an embedded supervisord
	SupervisorIncludeDir string // required with SupervisorURL
	Supervisord          string // binary of the embedded one
	Capacity             int    // 0: the number of CPUs
	Labels               string // k=v,k2=v2 (see labels)
	DataDir              string // empty: ./concierge-data
	RelayRTMP            string // host:port or rtmp://host:port (see relayAddr)
	FFmpeg               string // the concierge refuses to start without it
	HTTPAddr             string // empty: no health and metrics server
	DrainTimeout         time.Duration
	LogLevel             string
	HTTP                 httpTimeoutConfig
}

func (c *conciergeConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Control, "control", "", controlHelp+" (required)")
	fs.StringVar(&c.ClusterToken, "cluster-token", "", "cluster token for the control plane's node API")
	fs.StringVar(&c.Name, "name", "", "node name, unique among live nodes (default: HOST-concierge, plus -PORT when the --http-addr port is not 8082)")
	fs.StringVar(&c.SupervisorURL, "supervisor-url", "", "drive an existing supervisord at http://HOST:PORT or unix:///path.sock instead of starting an embedded one")
	fs.StringVar(&c.SupervisorIncludeDir, "supervisor-include-dir", "", "with --supervisor-url: the directory its [include] files= glob reads (*.conf); one file per task goes there")
	fs.StringVar(&c.Supervisord, "supervisord", "", "supervisord binary for the embedded one (default: bin/supervisord next to portier, else supervisord on PATH)")
	fs.IntVar(&c.Capacity, "capacity", 0, "CPU cores this host offers tasks (default: number of CPUs); "+capacityCostHelp)
	fs.StringVar(&c.Labels, "labels", "", "node labels k=v,k2=v2 that tasks can require")
	fs.StringVar(&c.DataDir, "data-dir", "./concierge-data", "directory for the embedded supervisord, its config and task logs")
	fs.StringVar(&c.RelayRTMP, "relay-rtmp", "", "relay near this host, host:port or rtmp://host:port: tasks read their stream from it and pulls publish to it (default: the control plane's --relay-rtmp-url); announced to the control plane, given to tasks as PORTIER_RELAY_RTMP")
	fs.StringVar(&c.FFmpeg, "ffmpeg", "ffmpeg", "ffmpeg binary (name on PATH or path)")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8082", "HTTP listen address for /healthz, /readyz and /metrics (empty: none)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 20*time.Second, "on SIGTERM, how long to wait for handed-back tasks to run elsewhere before stopping them")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	c.HTTP.flags(fs)
}

func (c *conciergeConfig) validate() error {
	var p problems
	if c.Control == "" {
		p.add(missing("control", "the control plane's base URL, e.g. http://127.0.0.1:8080"))
	} else {
		p.add(checkControl(c.Control))
	}
	if c.SupervisorURL != "" {
		p.add(checkSupervisorURL(c.SupervisorURL))
		p.add(checkRequired("supervisor-include-dir", c.SupervisorIncludeDir, "with --supervisor-url, the directory that supervisord's [include] section reads, where the concierge writes one program file per task"))
	}
	if c.Name == "" {
		c.Name = roleNodeName("concierge", c.HTTPAddr, "8082")
	}
	p.add(checkNodeName(c.Name, "worker-1"))
	p.add(checkCapacity(c.Capacity, "the number of CPUs"))
	if _, err := parseLabels(c.Labels); err != nil {
		p.add(invalid("labels", "%v", err))
	}
	if c.RelayRTMP != "" && !isDialAddr(c.relayAddr()) {
		p.add(badValue("relay-rtmp", c.RelayRTMP, "want host:port or rtmp://host:port of the relay near this host, e.g. rtmp://edge-1:1935"))
	}
	if c.HTTPAddr != "" {
		p.add(checkListenAddr("http-addr", c.HTTPAddr, ":8082 (or empty for none)"))
	}
	p.add(checkPositive("drain-timeout", c.DrainTimeout, "20s"))
	p.add(checkLogLevel(c.LogLevel))
	c.HTTP.validate(&p)
	return p.err()
}

// checkSupervisorURL checks --supervisor-url the way the supervisor client
// reads it: http://host:port[/RPC2] or unix:///path.sock.
func checkSupervisorURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.Scheme == "http" && u.Host != "":
		return nil
	case err == nil && u.Scheme == "unix" && u.Path != "":
		return nil
	}
	shown := raw
	if strings.Contains(raw, "@") {
		shown = "(not shown: it may hold a password)"
	}
	return badValue("supervisor-url", shown, "want http://HOST:PORT or unix:///path/to/supervisor.sock, e.g. unix:///run/supervisor.sock")
}

// relayAddr is --relay-rtmp as host:port, the form nodes announce.
func (c *conciergeConfig) relayAddr() string {
	return strings.TrimSuffix(strings.TrimPrefix(c.RelayRTMP, "rtmp://"), "/")
}

// runConcierge runs `portier concierge`: the worker daemon that runs the
// control plane's ffmpeg tasks under supervisord.
func runConcierge(ctx context.Context, args []string) error {
	cfg, err := loadConfig[conciergeConfig]("concierge", args)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	lab, err := parseLabels(cfg.Labels)
	if err != nil {
		return err
	}
	c, err := concierge.New(concierge.Params{
		Control: cfg.Control, ClusterToken: cfg.ClusterToken, Name: cfg.Name, Capacity: cfg.Capacity, Labels: lab,
		RelayRTMP: cfg.relayAddr(), SupervisorURL: cfg.SupervisorURL, SupervisorIncludeDir: cfg.SupervisorIncludeDir, SupervisorBinary: cfg.Supervisord,
		DataDir: cfg.DataDir, FFmpeg: cfg.FFmpeg, DrainTimeout: cfg.DrainTimeout, HTTPAddr: cfg.HTTPAddr, HTTPTimeouts: cfg.HTTP.timeouts(), Logger: logger,
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
