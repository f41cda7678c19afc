package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/hlsorigin"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/models"
)

// hlsOriginConfig is the configuration of `portier hls-origin`: the store
// that HLS tasks PUT playlists and segments into and CDN edges read from.
type hlsOriginConfig struct {
	HTTPAddr         string
	Storage          string // a directory, or s3://BUCKET/PREFIX
	Control          string
	ClusterToken     string
	Name             string // empty: HOST-hls-origin[-PORT]
	AdvertiseHTTP    string
	S3Endpoint       string
	S3Region         string
	S3Insecure       bool
	Retention        time.Duration
	StreamQuotaBytes int64
	MaxSegmentBytes  int64
	LogLevel         string
	HTTP             httpTimeoutConfig
}

// hlsOriginDefaultPort is the port of the default --http-addr.
const hlsOriginDefaultPort = "8090"

func (c *hlsOriginConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":"+hlsOriginDefaultPort, "HTTP listen address (/hls/s/, /metrics, /healthz, /readyz)")
	fs.StringVar(&c.Storage, "storage", "", "where objects are stored: a directory, or s3://BUCKET/PREFIX (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&c.Control, "control", "", controlHelp+" (required)")
	fs.StringVar(&c.ClusterToken, "cluster-token", "", "cluster token: verifies task credentials, authorises reads and the control plane's node API")
	fs.StringVar(&c.Name, "name", "", "node name, unique among live nodes (default: HOST-hls-origin, plus -PORT when the --http-addr port is not "+hlsOriginDefaultPort+")")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http-addr", "", "HTTP host:port other nodes use to reach this origin (default: the listen address, with 127.0.0.1 for an unspecified host)")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", "", "S3 endpoint URL for s3:// storage, e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000 (required with s3://)")
	fs.StringVar(&c.S3Region, "s3-region", "", "S3 region (default: the endpoint's, or us-east-1)")
	fs.BoolVar(&c.S3Insecure, "s3-insecure", false, "accept an http:// S3 endpoint (credentials and media travel unencrypted)")
	fs.DurationVar(&c.Retention, "retention", hlsorigin.DefaultRetention, "how long after its last write a stream's files are removed")
	fs.Int64Var(&c.StreamQuotaBytes, "stream-quota-bytes", hlsorigin.DefaultStreamQuotaBytes, "most bytes one stream may store (uploads past it get 413)")
	fs.Int64Var(&c.MaxSegmentBytes, "max-segment-bytes", hlsorigin.DefaultMaxSegmentBytes, "largest segment accepted (413 above it)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	c.HTTP.flags(fs)
}

func (c *hlsOriginConfig) validate() error {
	var p problems
	p.add(checkListenAddr("http-addr", c.HTTPAddr, ":"+hlsOriginDefaultPort))
	switch {
	case c.Storage == "":
		p.add(missing("storage", "a directory (e.g. /var/lib/portier/hls) or s3://BUCKET/PREFIX"))
	case strings.HasPrefix(c.Storage, "s3://"):
		p.add(c.checkS3())
	case strings.Contains(c.Storage, "://"):
		p.add(badValue("storage", c.Storage, "want a directory or s3://BUCKET/PREFIX"))
	}
	if c.Control == "" {
		p.add(missing("control", "the control plane's base URL, where the origin registers, e.g. http://control:8080"))
	} else {
		p.add(checkControl(c.Control))
	}
	p.add(checkRequired("cluster-token", c.ClusterToken, "the control plane's cluster token: it verifies task credentials and authorises reads"))
	if c.Name == "" {
		c.Name = roleNodeName(models.NodeRoleHLSOrigin, c.HTTPAddr, hlsOriginDefaultPort)
	}
	p.add(checkNodeName(c.Name, "hls-origin-1"))
	if c.AdvertiseHTTP != "" {
		p.add(checkDialAddr("advertise-http-addr", c.AdvertiseHTTP, "hls-origin-1.internal:8090"))
	}
	p.add(checkPositive("retention", c.Retention, "10m"))
	if c.StreamQuotaBytes <= 0 {
		p.add(badValue("stream-quota-bytes", fmt.Sprint(c.StreamQuotaBytes), "want a byte count above zero, e.g. 4294967296 (4 GiB)"))
	}
	if c.MaxSegmentBytes <= 0 || (c.StreamQuotaBytes > 0 && c.MaxSegmentBytes > c.StreamQuotaBytes) {
		p.add(badValue("max-segment-bytes", fmt.Sprint(c.MaxSegmentBytes), "want a byte count above zero and at most --stream-quota-bytes, e.g. 67108864 (64 MiB)"))
	}
	p.add(checkLogLevel(c.LogLevel))
	c.HTTP.validate(&p)
	return p.err()
}

// s3Location is s3://BUCKET/PREFIX split; prefix has no leading slash and
// ends in "/" unless empty.
func s3Location(storage string) (bucket, prefix string) {
	rest := strings.TrimPrefix(storage, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix
}

func (c *hlsOriginConfig) checkS3() error {
	bucket, _ := s3Location(c.Storage)
	if len(bucket) < 3 || len(bucket) > 63 || strings.ToLower(bucket) != bucket || strings.ContainsAny(bucket, "_ ?#") {
		return badValue("storage", c.Storage, "want s3://BUCKET/PREFIX with a bucket name of 3-63 lower-case letters, digits, dots and dashes")
	}
	u, err := url.Parse(c.S3Endpoint)
	switch {
	case c.S3Endpoint == "":
		return missing("s3-endpoint", "s3:// storage needs the endpoint URL, e.g. --s3-endpoint https://s3.eu-west-1.amazonaws.com")
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return badValue("s3-endpoint", controlclient.RedactURL(c.S3Endpoint), "want http(s)://host[:port], e.g. https://s3.eu-west-1.amazonaws.com")
	case u.Scheme == "http" && !c.S3Insecure:
		return invalid("s3-endpoint", "--s3-endpoint %s is plain http: add --s3-insecure to accept it, or use https", controlclient.RedactURL(c.S3Endpoint))
	case os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_SECRET_ACCESS_KEY") == "":
		return invalid("storage", "--storage %s needs S3 credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", c.Storage)
	}
	return nil
}

// backend opens the configured storage.
func (c *hlsOriginConfig) backend(ctx context.Context) (hlsorigin.Backend, error) {
	if !strings.HasPrefix(c.Storage, "s3://") {
		return hlsorigin.NewFSBackend(c.Storage)
	}
	bucket, prefix := s3Location(c.Storage)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := hlsorigin.NewS3Backend(ctx, hlsorigin.S3Params{Endpoint: c.S3Endpoint, Region: c.S3Region, Bucket: bucket, Prefix: prefix,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")})
	if err != nil {
		return nil, fmt.Errorf("--storage %s: %w", c.Storage, err)
	}
	return b, nil
}

// hlsOriginAgent keeps an HLS origin registered with the control plane
// (role hls-origin) and heartbeating with its load.
func hlsOriginAgent(o *hlsorigin.Origin, control, token, name, httpAddr string, logger *slog.Logger) (*controlclient.Agent, error) {
	client, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: control, Token: token, Timeout: 2 * time.Second, Logger: logger})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return controlclient.NewAgent(controlclient.AgentParams{Client: client, Logger: logger,
		Node: nodewire.NodeInfo{Name: name, Role: models.NodeRoleHLSOrigin, HTTPAddress: httpAddr, Host: host},
		Report: func() nodewire.Heartbeat {
			l := o.Load()
			return nodewire.Heartbeat{Load: nodewire.Load{Streams: l.Streams, BitrateIn: l.BitrateIn, BitrateOut: l.BitrateOut,
				UploadsPerSecond: l.UploadsPerSecond, StorageErrors: l.StorageErrors}}
		}}), nil
}

// runHLSOrigin is `portier hls-origin`.
func runHLSOrigin(ctx context.Context, args []string) error {
	cfg, err := loadConfig[hlsOriginConfig]("hls-origin", args)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	b, err := cfg.backend(ctx)
	if err != nil {
		return err
	}
	o, err := hlsorigin.New(hlsorigin.Params{Backend: b, ClusterToken: cfg.ClusterToken, Retention: cfg.Retention,
		StreamQuotaBytes: cfg.StreamQuotaBytes, MaxSegmentBytes: cfg.MaxSegmentBytes, Logger: logger})
	if err != nil {
		return err
	}
	if err := o.Start(ctx); err != nil {
		return fmt.Errorf("hls storage %s: %w", controlclient.RedactURL(cfg.Storage), err)
	}
	defer o.Close()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
	}
	hs := httpserve.NewServer(o.HTTPHandler(), cfg.HTTP.timeouts())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	agent, err := hlsOriginAgent(o, cfg.Control, cfg.ClusterToken, cfg.Name, controlclient.AdvertiseAddr(cfg.AdvertiseHTTP, ln), logger)
	if err != nil {
		_ = hs.Close()
		return err
	}
	logger.Info("hls origin started", "name", cfg.Name, "http", ln.Addr().String(), "storage", controlclient.RedactURL(cfg.Storage))
	return serveNode(ctx, hs, errc, agent, logger, "hls origin")
}

// serveNode runs agent beside the HTTP server hs (whose Serve error
// arrives on errc) until ctx ends, the server fails or the control plane
// refuses the node, then stops both; what names the role in the logs.
func serveNode(ctx context.Context, hs *http.Server, errc <-chan error, agent *controlclient.Agent, logger *slog.Logger, what string) error {
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); agent.Run(actx) }()
	var runErr error
	select {
	case err := <-errc:
		runErr = fmt.Errorf("http server: %w", err)
	case <-agent.Fatal():
		runErr = agent.Err()
	case <-ctx.Done():
	}
	stopAgent()
	<-agentDone
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	logger.Info(what + " stopped")
	return runErr
}
