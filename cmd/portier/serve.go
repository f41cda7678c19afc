package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/dirlock"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
)

// serveConfig is the configuration of `portier serve`, the control plane
// alone: on Postgres for clusters (Replicas may share it) or on SQLite for
// one replica.
type serveConfig struct {
	DatabaseURL   string
	HTTPAddr      string
	ClusterToken  string
	PublicHost    string
	PublicURL     string
	RTMPPort      int
	RTSPPort      int
	PlayHTTPBase  string
	Replicas      int
	HookAllow     string // per dialect, parsed by portier.ParseHookAllow
	HookOriginTTL string // per dialect, parsed by portier.ParseOriginTTL
	RelayRTMPURL  string
	RecordDir     string
	HLSOriginURL  string
	HTTP          httpTimeoutConfig
	LogLevel      string
	securityConfig
	hlsRewriteConfig
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", "", "postgres://user:pass@host/db (several replicas may share it) or a SQLite file path (one replica only)")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "address of the web UI, REST API, hooks and node API")
	fs.StringVar(&c.ClusterToken, "cluster-token", "", "shared secret that relays, concierges and media-server hooks present (required)")
	fs.StringVar(&c.PublicHost, "public-host", "", "host name in ingest and play URLs (default: the host of each API request)")
	fs.StringVar(&c.PublicURL, "public-url", "", publicURLHelp)
	fs.IntVar(&c.RTMPPort, "rtmp-port", 1935, "public RTMP port of the relays, for ingest and play URLs")
	fs.IntVar(&c.RTSPPort, "rtsp-port", 0, "public RTSP port of the relays, for play URLs (0: the relays serve no RTSP, streams show no RTSP URL)")
	fs.StringVar(&c.PlayHTTPBase, "play-http-base", "", "base URL of HTTP-FLV playback, e.g. http://edge.example:8081 (default: the address the API is reached at)")
	fs.IntVar(&c.Replicas, "replicas", 1, "how many control-plane replicas share the database (more than 1 needs Postgres)")
	fs.StringVar(&c.HookAllow, "hook-allow", "", hookAllowHelp)
	fs.StringVar(&c.HookOriginTTL, "hook-origin-ttl", "", "per-dialect time a publish reported by a media-server hook stays live unless confirmed, e.g. \"mediamtx=60s\" (default: until its unpublish hook)")
	fs.StringVar(&c.RelayRTMPURL, "relay-rtmp-url", "rtmp://127.0.0.1:1935", "RTMP base URL of the relay that tasks pull streams from and publish pulled sources to, unless their concierge names its own (concierge --relay-rtmp)")
	fs.StringVar(&c.RecordDir, "record-dir", "", "absolute directory on the worker hosts where record tasks write (required for record tasks)")
	fs.StringVar(&c.HLSOriginURL, "hls-origin-url", "", "base URL of the HLS origin that HLS tasks PUT to (required for HLS tasks)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	c.securityConfig.flags(fs)
	c.hlsRewriteConfig.flags(fs)
	c.HTTP.flags(fs)
}

func (c *serveConfig) validate() error {
	var p problems
	p.add(checkDatabaseURL(c.DatabaseURL))
	p.add(checkReplicas(c.DatabaseURL, c.Replicas))
	p.add(checkListenAddr("http-addr", c.HTTPAddr, ":8080"))
	p.add(checkRequired("cluster-token", c.ClusterToken, "relays, concierges and hooks authenticate with it; generate one with `openssl rand -hex 24`"))
	p.add(checkPublicHost(c.PublicHost))
	p.add(checkPublicURL(c.PublicURL))
	if c.RTSPPort < 0 || c.RTSPPort > 65535 {
		p.add(badValue("rtsp-port", strconv.Itoa(c.RTSPPort), "want the relays' public RTSP port, 1-65535, e.g. 8554, or 0 for none"))
	}
	if c.RTMPPort < 1 || c.RTMPPort > 65535 {
		p.add(badValue("rtmp-port", strconv.Itoa(c.RTMPPort), "want the relays' public RTMP port, 1-65535, e.g. 1935"))
	}
	if c.PlayHTTPBase != "" {
		p.add(checkURL("play-http-base", c.PlayHTTPBase, "http://edge.example:8081", "http", "https"))
	}
	p.add(checkHookAllow(c.HookAllow))
	if _, err := portier.ParseOriginTTL(c.HookOriginTTL); err != nil {
		p.add(invalid("hook-origin-ttl", "--hook-origin-ttl: %v", err))
	}
	p.add(checkURL("relay-rtmp-url", c.RelayRTMPURL, "rtmp://127.0.0.1:1935", "rtmp", "rtmps"))
	if c.RecordDir != "" && !filepath.IsAbs(c.RecordDir) {
		p.add(badValue("record-dir", c.RecordDir, "want an absolute path, the same on the workers and the control plane, e.g. /srv/portier/recordings"))
	}
	if c.HLSOriginURL != "" {
		p.add(checkURL("hls-origin-url", c.HLSOriginURL, "http://hls-origin:8090", "http", "https"))
	}
	p.add(checkLogLevel(c.LogLevel))
	c.securityConfig.validate(&p)
	c.hlsRewriteConfig.validate(&p)
	c.HTTP.validate(&p)
	return p.err()
}

// hookAllowHelp is the help of --hook-allow (serve and run).
const hookAllowHelp = "source networks whose media-server hook calls (/hooks/*) need no cluster token, e.g. \"127.0.0.1/32,10.0.0.0/8\", " +
	"or per dialect \"srs=10.0.0.0/8;nginx-rtmp=192.168.1.7\" (dialects: native, srs, nginx-rtmp, mediamtx); default none: every call presents the token"

// checkHookAllow checks a --hook-allow.
func checkHookAllow(s string) error {
	if _, err := portier.ParseHookAllow(s); err != nil {
		return invalid("hook-allow", "--hook-allow: %v", err)
	}
	return nil
}

// checkDatabaseURL checks a --database-url without ever showing it: a
// Postgres URL carries a password.
func checkDatabaseURL(dsn string) error {
	if dsn == "" {
		return missing("database-url", "postgres://user:pass@host/db for clusters, or a SQLite file path for one replica")
	}
	if models.IsPostgres(dsn) {
		if _, err := url.Parse(dsn); err != nil {
			return invalid("database-url", "--database-url is not a valid postgres:// URL (not shown: it may hold a password): "+
				"percent-encode special characters in the user name and password, e.g. @ as %%40")
		}
	}
	return nil
}

// checkReplicas checks --replicas against the database: SQLite allows one
// control-plane replica only.
func checkReplicas(dsn string, replicas int) error {
	if replicas < 1 {
		return badValue("replicas", strconv.Itoa(replicas), "want at least 1, the number of control-plane replicas sharing the database")
	}
	if replicas > 1 && !models.IsPostgres(dsn) {
		return invalid("replicas", "SQLite supports one control-plane replica only, but --replicas/PORTIER_REPLICAS is %d: "+
			"use a Postgres --database-url (postgres://…) to run several replicas", replicas)
	}
	return nil
}

// runServe is `portier serve`: the control plane alone, for clusters on
// Postgres (several replicas may share it) or for one replica on SQLite.
func runServe(ctx context.Context, args []string) error {
	cfg, err := loadConfig[serveConfig]("serve", args)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	store, release, err := openControlStore(ctx, cfg.DatabaseURL, cfg.Replicas)
	if err != nil {
		return err
	}
	defer release()
	defer store.Close()

	if pw, created, err := store.EnsureAdmin(ctx, os.Getenv("PORTIER_ADMIN_PASSWORD")); err != nil {
		return fmt.Errorf("create first admin: %w", err)
	} else if created && os.Getenv("PORTIER_ADMIN_PASSWORD") == "" {
		fmt.Fprintf(os.Stderr, "created user admin with password %s (shown once; change it in the UI)\n", pw)
	}
	allow, err := portier.ParseHookAllow(cfg.HookAllow)
	if err != nil {
		return fmt.Errorf("--hook-allow: %w", err)
	}
	ttl, err := portier.ParseOriginTTL(cfg.HookOriginTTL)
	if err != nil {
		return fmt.Errorf("--hook-origin-ttl: %w", err)
	}
	sec, err := cfg.securityConfig.params()
	if err != nil {
		return err
	}
	srv, err := portier.New(portier.Params{
		Store: store, ClusterToken: cfg.ClusterToken, Logger: log, Security: sec,
		PublicHost: cfg.PublicHost, RTMPPort: cfg.RTMPPort, RTSPPort: cfg.RTSPPort, PlayHTTPBase: cfg.PlayHTTPBase,
		PublicURL: publicURL(cfg.PublicURL, cfg.PublicHost, hostName(), httpPortOf(cfg.HTTPAddr)),
		Hooks:     portier.HookParams{Allow: allow, OriginTTL: ttl},
		Live: portier.LiveParams{Compile: compile.Env{
			RelayRTMPURL: cfg.RelayRTMPURL, RecordDir: cfg.RecordDir, HLSOriginURL: cfg.HLSOriginURL,
		}},
	})
	if err != nil {
		return err
	}
	// Shutdown order: serveHTTP shuts the HTTP server down when ctx ends,
	// then Close stops the background work and waits for it, then the
	// deferred store.Close runs.
	srv.StartBackground(ctx)
	defer srv.Close()
	// The playlist rewriter reads from the HLS origin HLS tasks write to.
	if cfg.HLSOriginURL != "" {
		if err := cfg.hlsRewriteConfig.mount(ctx, srv, []string{cfg.HLSOriginURL}, cfg.ClusterToken, log); err != nil {
			return err
		}
	}
	return serveHTTP(ctx, cfg.HTTPAddr, srv.Handler(), cfg.HTTP.timeouts(), log)
}

// openControlStore opens the control plane's database. On SQLite it refuses
// more than one replica and takes an exclusive lock file next to the
// database, so a second `portier serve` on the same file stops with a clear
// message instead of corrupting live state. release drops the lock.
func openControlStore(ctx context.Context, dsn string, replicas int) (*models.Store, func(), error) {
	if err := checkReplicas(dsn, replicas); err != nil {
		return nil, nil, err
	}
	release := func() {}
	if !models.IsPostgres(dsn) {
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		var err error
		if release, err = lockFile(dsn + ".lock"); err != nil {
			return nil, nil, err
		}
		if err := privateSQLite(dsn); err != nil {
			release()
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

// privateSQLite makes the SQLite database (stream keys, password and token
// hashes) readable by this user only: it creates the file 0600 before
// SQLite opens it (SQLite gives its -wal and -shm files the database's
// mode) and narrows the mode of existing files.
func privateSQLite(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("database file mode: %w", err)
		}
	}
	return nil
}

// lockFile takes the SQLite database's lock file (see dirlock.LockFile).
func lockFile(path string) (func(), error) {
	release, holder, err := dirlock.LockFile(path)
	if errors.Is(err, dirlock.ErrHeld) {
		return nil, fmt.Errorf("another portier control plane already uses this SQLite database (%s holds %s): "+
			"SQLite allows one replica only; stop the other process or use Postgres for several replicas", holder, path)
	}
	return release, err
}

// serveHTTP serves h on addr until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, addr string, h http.Handler, to httpserve.Timeouts, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	hs := httpserve.NewServer(h, to)
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
