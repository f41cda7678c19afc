package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/hlsrewrite"
)

// hlsRewriteConfig holds the playlist rewriter's options that `serve` and
// `run` share.
type hlsRewriteConfig struct {
	KeyDepth       string
	BalanceFactor  float64
	SignTTL        time.Duration
	PlayTokenTTL   time.Duration
	AllowedOrigins string
	SteeringTTL    time.Duration
}

func (c *hlsRewriteConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.KeyDepth, "hls-key-depth", "rendition", "what the playlist rewriter hashes to pick a CDN edge for a segment: stream, rendition or segment (1, 2 or 3 path segments below /hls/s/)")
	fs.Float64Var(&c.BalanceFactor, "hls-balance-factor", hlsrewrite.DefaultBalanceFactor, "bounded-load factor c: an edge takes a new segment only while its load is under ⌈c · (total+1) · its share of the capacity⌉ (≥ 1)")
	fs.DurationVar(&c.SignTTL, "hls-sign-ttl", hlsrewrite.DefaultSignTTL, "how long the signed segment URLs in a playlist stay valid on the CDN edges")
	fs.DurationVar(&c.PlayTokenTTL, "hls-play-token-ttl", hlsrewrite.DefaultPlayTokenTTL, "how long the play token in a stream's play.hls viewer URL stays valid (streams whose HLS is not public)")
	fs.StringVar(&c.AllowedOrigins, "hls-allowed-origins", "*", "CORS: origins (scheme://host[:port], comma-separated) whose pages may load playlists from the rewriter; * for any")
	fs.DurationVar(&c.SteeringTTL, "hls-steering-ttl", hlsrewrite.DefaultSteeringTTL, "TTL of the content-steering manifest: how soon players move off a CDN edge that died (whole seconds)")
}

func (c *hlsRewriteConfig) validate(p *problems) {
	if _, err := hlsrewrite.ParseKeyDepth(c.KeyDepth); err != nil {
		p.add(badValue("hls-key-depth", c.KeyDepth, "want stream, rendition or segment"))
	}
	if c.BalanceFactor < 1 {
		p.add(badValue("hls-balance-factor", strconv.FormatFloat(c.BalanceFactor, 'g', -1, 64), "want at least 1, e.g. 1.25"))
	}
	p.add(checkPositive("hls-sign-ttl", c.SignTTL, "1h"))
	p.add(checkPositive("hls-play-token-ttl", c.PlayTokenTTL, "6h"))
	if c.SteeringTTL < time.Second {
		p.add(badValue("hls-steering-ttl", c.SteeringTTL.String(), "want at least 1s, e.g. 1s"))
	}
	for _, o := range strings.Split(c.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "*" && checkURL("hls-allowed-origins", o, "https://player.example.com", "http", "https") != nil {
			p.add(badValue("hls-allowed-origins", o, "want * or origins like https://player.example.com, comma-separated"))
			break
		}
	}
}

// mount builds the rewriter over srv's directory, reading playlists from
// the HLS origins at originURLs, and mounts it on srv until ctx ends.
func (c *hlsRewriteConfig) mount(ctx context.Context, srv *portier.Server, originURLs []string, token string, logger *slog.Logger) error {
	depth, err := hlsrewrite.ParseKeyDepth(c.KeyDepth)
	if err != nil {
		return fmt.Errorf("--hls-key-depth: %w", err)
	}
	rw, err := hlsrewrite.New(hlsrewrite.Params{
		Directory: srv.HLSDirectory(),
		Origin:    &hlsrewrite.HTTPOrigin{BaseURLs: originURLs, ClusterToken: token, Client: newHLSOriginClient()},
		Secret:    hlssign.Secret(token), KeyDepth: depth, BalanceFactor: c.BalanceFactor, SignTTL: c.SignTTL,
		SteeringTTL: c.SteeringTTL, AllowOrigins: strings.Split(c.AllowedOrigins, ","), Logger: logger,
	})
	if err != nil {
		return err
	}
	rw.Start(ctx)
	srv.MountHLS(rw, c.PlayTokenTTL)
	return nil
}

// newHLSOriginClient reaches the HLS origins for playlists.
func newHLSOriginClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 5 * time.Second
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}
