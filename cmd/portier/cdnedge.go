package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/cdnedge"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/models"
)

// cdnEdgeConfig is the configuration of `portier cdn-edge`: a caching
// proxy that serves viewers' signed HLS requests from HLS origins.
type cdnEdgeConfig struct {
	HTTPAddr       string
	Origins        string // comma-separated base URLs
	Control        string
	ClusterToken   string
	Name           string // empty: HOST-cdn-edge[-PORT]
	AdvertiseHTTP  string
	Capacity       int // egress capacity, Mbit/s
	CacheBytes     int64
	MaxObjectBytes int64
	DiskCacheDir   string // empty: memory only
	DiskCacheBytes int64
	AllowOrigins   string // comma-separated; "*": any
	StaleFor       time.Duration
	OriginTimeout  time.Duration
	LogLevel       string
	HTTP           httpTimeoutConfig
}

// cdnEdgeDefaultPort is the port of the default --http-addr.
const cdnEdgeDefaultPort = "8095"

// cdnEdgeDefaultCapacity is the default --capacity: 1 Gbit/s of egress.
const cdnEdgeDefaultCapacity = 1000

func (c *cdnEdgeConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":"+cdnEdgeDefaultPort, "HTTP listen address (/hls/s/ for viewers, /metrics, /healthz, /readyz)")
	fs.StringVar(&c.Origins, "origin", "", "HLS origin base URLs, comma-separated, e.g. http://hls-origin-1:8090,http://hls-origin-2:8090 (required)")
	fs.StringVar(&c.Control, "control", "", controlHelp+" (required)")
	fs.StringVar(&c.ClusterToken, "cluster-token", "", "cluster token: authorises origin reads and the control plane's node API; the viewer signature secret is derived from it")
	fs.StringVar(&c.Name, "name", "", "node name, unique among live nodes (default: HOST-cdn-edge, plus -PORT when the --http-addr port is not "+cdnEdgeDefaultPort+")")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http-addr", "", "HTTP host:port viewers and the control plane use to reach this edge (default: the listen address, with 127.0.0.1 for an unspecified host)")
	fs.IntVar(&c.Capacity, "capacity", cdnEdgeDefaultCapacity, "egress capacity in Mbit/s, registered with the control plane (the playlist rewriter weights edges by it)")
	fs.Int64Var(&c.CacheBytes, "cache-bytes", cdnedge.DefaultCacheBytes, "memory cache bound in bytes (least recently used objects are evicted past it)")
	fs.Int64Var(&c.MaxObjectBytes, "max-object-bytes", 0, "largest object kept in the cache; larger ones are streamed but not kept (default: an eighth of --cache-bytes)")
	fs.StringVar(&c.DiskCacheDir, "disk-cache-dir", "", "directory for a disk tier behind the memory cache (segments; emptied at start; default: memory only)")
	fs.Int64Var(&c.DiskCacheBytes, "disk-cache-bytes", cdnedge.DefaultDiskBytes, "disk tier bound in bytes (with --disk-cache-dir)")
	fs.StringVar(&c.AllowOrigins, "cors-allow-origins", "*", "CORS: origins (scheme://host[:port], comma-separated) whose pages may load HLS from this edge; * for any")
	fs.DurationVar(&c.StaleFor, "stale-for", cdnedge.DefaultStaleFor, "how long past its freshness a playlist is still served while one refresh runs")
	fs.DurationVar(&c.OriginTimeout, "origin-timeout", cdnedge.DefaultOriginTimout, "bound on one origin fetch, body included")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	c.HTTP.flags(fs)
}

func (c *cdnEdgeConfig) origins() []string {
	var out []string
	for _, o := range strings.Split(c.Origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

func (c *cdnEdgeConfig) allowOrigins() []string { return strings.Split(c.AllowOrigins, ",") }

func (c *cdnEdgeConfig) validate() error {
	var p problems
	p.add(checkListenAddr("http-addr", c.HTTPAddr, ":"+cdnEdgeDefaultPort))
	if len(c.origins()) == 0 {
		p.add(missing("origin", "the HLS origin(s) this edge caches, e.g. --origin http://hls-origin-1:8090"))
	}
	for _, o := range c.origins() {
		if err := checkURL("origin", o, "http://hls-origin-1:8090", "http", "https"); err != nil {
			p.add(err)
			break
		}
	}
	if c.Control == "" {
		p.add(missing("control", "the control plane's base URL, where the edge registers, e.g. http://control:8080"))
	} else {
		p.add(checkControl(c.Control))
	}
	p.add(checkRequired("cluster-token", c.ClusterToken, "the control plane's cluster token: it authorises origin reads and signs viewer URLs"))
	if c.Name == "" {
		c.Name = roleNodeName(models.NodeRoleCDNEdge, c.HTTPAddr, cdnEdgeDefaultPort)
	}
	p.add(checkNodeName(c.Name, "cdn-edge-1"))
	if c.AdvertiseHTTP != "" {
		p.add(checkDialAddr("advertise-http-addr", c.AdvertiseHTTP, "cdn-edge-1.example.com:8095"))
	}
	if c.Capacity <= 0 {
		p.add(badValue("capacity", fmt.Sprint(c.Capacity), "want the edge's egress capacity in Mbit/s, e.g. 10000 for 10 Gbit/s"))
	}
	if c.CacheBytes <= 0 {
		p.add(badValue("cache-bytes", fmt.Sprint(c.CacheBytes), "want a byte count above zero, e.g. 536870912 (512 MiB)"))
	}
	if c.MaxObjectBytes < 0 || c.MaxObjectBytes > c.CacheBytes {
		p.add(badValue("max-object-bytes", fmt.Sprint(c.MaxObjectBytes), "want 0 (an eighth of --cache-bytes) or a byte count up to --cache-bytes, e.g. 67108864"))
	}
	if c.DiskCacheDir != "" && c.DiskCacheBytes <= 0 {
		p.add(badValue("disk-cache-bytes", fmt.Sprint(c.DiskCacheBytes), "want a byte count above zero, e.g. 10737418240 (10 GiB)"))
	}
	for _, o := range c.allowOrigins() {
		if o = strings.TrimSpace(o); o != "*" && checkURL("cors-allow-origins", o, "https://player.example.com", "http", "https") != nil {
			p.add(badValue("cors-allow-origins", o, "want * or origins like https://player.example.com, comma-separated"))
			break
		}
	}
	p.add(checkPositive("stale-for", c.StaleFor, "6s"))
	p.add(checkPositive("origin-timeout", c.OriginTimeout, "30s"))
	p.add(checkLogLevel(c.LogLevel))
	c.HTTP.validate(&p)
	return p.err()
}

// cdnEdgeAgent keeps a CDN edge registered with the control plane (role
// cdn-edge) and heartbeating with its load.
func cdnEdgeAgent(e *cdnedge.Edge, control, token, name, httpAddr string, capacity int, logger *slog.Logger) (*controlclient.Agent, error) {
	client, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: control, Token: token, Timeout: 2 * time.Second, Logger: logger})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return controlclient.NewAgent(controlclient.AgentParams{Client: client, Logger: logger,
		Node: nodewire.NodeInfo{Name: name, Role: models.NodeRoleCDNEdge, HTTPAddress: httpAddr, Capacity: capacity, Host: host},
		Report: func() nodewire.Heartbeat {
			l := e.Load()
			return nodewire.Heartbeat{Load: nodewire.Load{Connections: l.ActiveRequests, BitrateOut: l.BitrateOut,
				ActiveRequests: l.ActiveRequests, HitRatio: l.HitRatio,
				CacheBytes: l.CacheBytes + l.DiskBytes, CacheCapacityBytes: l.CacheCapacityBytes + l.DiskCapacityBytes}}
		}}), nil
}

// runCDNEdge is `portier cdn-edge`.
func runCDNEdge(ctx context.Context, args []string) error {
	cfg, err := loadConfig[cdnEdgeConfig]("cdn-edge", args)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	edge, err := cdnedge.New(cdnedge.Params{Origins: cfg.origins(), ClusterToken: cfg.ClusterToken, CacheBytes: cfg.CacheBytes,
		MaxObjectBytes: cfg.MaxObjectBytes, DiskDir: cfg.DiskCacheDir, DiskBytes: cfg.DiskCacheBytes, AllowOrigins: cfg.allowOrigins(), StaleFor: cfg.StaleFor, OriginTimeout: cfg.OriginTimeout, Logger: logger})
	if err != nil {
		return err
	}
	defer edge.Close()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
	}
	hs := httpserve.NewServer(edge.HTTPHandler(), cfg.HTTP.timeouts())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	agent, err := cdnEdgeAgent(edge, cfg.Control, cfg.ClusterToken, cfg.Name, controlclient.AdvertiseAddr(cfg.AdvertiseHTTP, ln), cfg.Capacity, logger)
	if err != nil {
		_ = hs.Close()
		return err
	}
	logger.Info("cdn edge started", "name", cfg.Name, "http", ln.Addr().String(), "origins", len(cfg.origins()), "cache_bytes", cfg.CacheBytes)
	return serveNode(ctx, hs, errc, agent, logger, "cdn edge")
}
