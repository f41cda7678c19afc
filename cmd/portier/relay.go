package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/portier/portier/media/relay"
)

// runRelay runs `portier relay --role origin|edge`.
func runRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	role := fs.String("role", "", "origin (accepts publishes, serves edges) or edge (serves players, pulls from origins, forwards publishes)")
	control := fs.String("control", "", "control plane base URL, e.g. http://127.0.0.1:8080 (required for origins)")
	token := fs.String("cluster-token", "", "cluster token for the control plane's node API")
	rtmpAddr := fs.String("rtmp-addr", ":1935", "RTMP listen address")
	rtspAddr := fs.String("rtsp-addr", ":8554", "RTSP listen address (empty: no RTSP)")
	rtspUDP := fs.String("rtsp-udp-addr", "", "UDP address for RTSP's RTP (RTCP on the next port); empty: RTSP over TCP only")
	httpAddr := fs.String("http-addr", ":8081", "HTTP listen address (HTTP-FLV, /api/v1/streams, /metrics, /healthz, /readyz)")
	origins := fs.String("origins", "", "static origin list HOST:PORT,... used by edges when the control plane is unreachable")
	name := fs.String("name", defaultNodeName(), "node name shown by the control plane")
	advertise := fs.String("advertise-addr", "", "RTMP host:port other nodes use to reach this relay (default: the listen address, with 127.0.0.1 for an unspecified host)")
	advertiseHTTP := fs.String("advertise-http-addr", "", "HTTP host:port other nodes use to reach this relay (default: derived like --advertise-addr)")
	noOrigin := fs.Duration("no-origin-timeout", 10*time.Second, "edges: how long players wait when no origin has their stream before they are told it ended")
	idle := fs.Duration("idle-timeout", 5*time.Second, "edges: how long an upstream session stays open after its last player left")
	capacity := fs.Int("capacity", 0, "capacity reported at registration (0: unspecified)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var static []string
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			static = append(static, o)
		}
	}
	r, err := relay.New(relay.Params{
		Role:            *role,
		Name:            *name,
		RTMPAddr:        *rtmpAddr,
		RTSPAddr:        *rtspAddr,
		RTSPUDPAddr:     *rtspUDP,
		HTTPAddr:        *httpAddr,
		AdvertiseAddr:   *advertise,
		AdvertiseHTTP:   *advertiseHTTP,
		ControlURL:      *control,
		ClusterToken:    *token,
		StaticOrigins:   static,
		NoOriginTimeout: *noOrigin,
		IdleTimeout:     *idle,
		Capacity:        *capacity,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	logger.Info("relay started", "role", *role, "name", *name, "rtmp", r.RTMPAddr().String(), "http", r.HTTPAddr().String())
	<-ctx.Done()
	logger.Info("relay stopping")
	if err := r.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
