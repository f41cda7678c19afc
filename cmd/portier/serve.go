package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
)

// runServe is `portier serve`: the control plane alone, for clusters on
// Postgres (several replicas may share it) or for one replica on SQLite.
func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dbURL := fs.String("database-url", "", "postgres://user:pass@host/db (several replicas may share it) or a SQLite file path (one replica only)")
	httpAddr := fs.String("http-addr", ":8080", "address of the web UI, REST API, hooks and node API")
	clusterToken := fs.String("cluster-token", "", "shared secret that relays, concierges and media-server hooks present (required)")
	publicHost := fs.String("public-host", "", "host name in ingest and play URLs (default: the host of each API request)")
	rtmpPort := fs.Int("rtmp-port", 1935, "public RTMP port of the relays, for ingest and play URLs")
	playBase := fs.String("play-http-base", "", "base URL of HTTP-FLV playback, e.g. http://edge.example:8081 (default: the address the API is reached at)")
	replicas := fs.Int("replicas", 1, "how many control-plane replicas share the database (more than 1 needs Postgres)")
	hookAllow := fs.String("hook-allow", "", "per-dialect source networks whose hook calls need no cluster token, e.g. \"srs=10.0.0.0/8;nginx-rtmp=192.168.1.7\" (dialects: native, srs, nginx-rtmp, mediamtx)")
	hookTTL := fs.String("hook-origin-ttl", "", "per-dialect time a publish reported by a media-server hook stays live unless confirmed, e.g. \"mediamtx=60s\" (default: until its unpublish hook)")
	relayURL := fs.String("relay-rtmp-url", "rtmp://127.0.0.1:1935", "RTMP base URL of the relay that tasks pull streams from and publish pulled sources to")
	recordDir := fs.String("record-dir", "", "absolute directory on the worker hosts where record tasks write (required for record tasks)")
	hlsOrigin := fs.String("hls-origin-url", "", "base URL of the HLS origin that HLS tasks PUT to (required for HLS tasks)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("--database-url is required (postgres://… for clusters, or a SQLite file path)")
	}
	if *clusterToken == "" {
		return errors.New("--cluster-token is required: relays, concierges and hooks authenticate with it")
	}
	store, release, err := openControlStore(ctx, *dbURL, *replicas)
	if err != nil {
		return err
	}
	defer release()
	defer store.Close()

	log := slog.Default()
	if pw, created, err := store.EnsureAdmin(ctx, os.Getenv("PORTIER_ADMIN_PASSWORD")); err != nil {
		return fmt.Errorf("create first admin: %w", err)
	} else if created && os.Getenv("PORTIER_ADMIN_PASSWORD") == "" {
		fmt.Fprintf(os.Stderr, "created user admin with password %s (shown once; change it in the UI)\n", pw)
	}
	allow, err := portier.ParseHookAllow(*hookAllow)
	if err != nil {
		return fmt.Errorf("--hook-allow: %w", err)
	}
	ttl, err := portier.ParseOriginTTL(*hookTTL)
	if err != nil {
		return fmt.Errorf("--hook-origin-ttl: %w", err)
	}
	srv, err := portier.New(portier.Params{
		Store: store, ClusterToken: *clusterToken, Logger: log,
		PublicHost: *publicHost, RTMPPort: *rtmpPort, PlayHTTPBase: *playBase,
		Hooks: portier.HookParams{Allow: allow, OriginTTL: ttl},
		Live: portier.LiveParams{Compile: compile.Env{
			RelayRTMPURL: *relayURL, RecordDir: *recordDir, HLSOriginURL: *hlsOrigin,
		}},
	})
	if err != nil {
		return err
	}
	srv.StartBackground(ctx)
	return serveHTTP(ctx, *httpAddr, srv.Handler(), log)
}

// openControlStore opens the control plane's database. On SQLite it refuses
// more than one replica and takes an exclusive lock file next to the
// database, so a second `portier serve` on the same file stops with a clear
// message instead of corrupting live state. release drops the lock.
func openControlStore(ctx context.Context, dsn string, replicas int) (*models.Store, func(), error) {
	if replicas < 1 {
		return nil, nil, fmt.Errorf("--replicas must be at least 1, not %d", replicas)
	}
	release := func() {}
	if !models.IsPostgres(dsn) {
		if replicas > 1 {
			return nil, nil, fmt.Errorf("SQLite supports one control-plane replica only, but --replicas/PORTIER_REPLICAS is %d: "+
				"use a Postgres --database-url (postgres://…) to run several replicas", replicas)
		}
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		var err error
		if release, err = lockFile(dsn + ".lock"); err != nil {
			return nil, nil, err
		}
	}
	store, err := models.Open(ctx, dsn)
	if err != nil {
		release()
		return nil, nil, err
	}
	return store, release, nil
}

// lockFile takes an exclusive, non-blocking flock on path. The kernel drops
// it when the process dies, so a crash never leaves a stale lock.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another portier control plane already uses this SQLite database (lock %s is held): "+
				"SQLite allows one replica only; stop the other process or use Postgres for several replicas", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// serveHTTP serves h on addr until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("control plane listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}
