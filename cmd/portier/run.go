package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/internal/dirlock"
	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/media/cdnedge"
	"github.com/portier/portier/media/hlsorigin"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/media/rtsp"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
)

// runConfig is the configuration of `portier run`: the control plane, an
// origin relay and a concierge in one process, on SQLite in DataDir.
type runConfig struct {
	DataDir     string
	HTTPAddr    string
	RTMPAddr    string
	RTSPAddr    string // empty: no RTSP
	RTSPUDPAddr string // empty: RTSP over TCP only
	// RTSPUDPReadBuffer: bytes of receive buffer per RTSP UDP socket
	// (-1: the OS default).
	RTSPUDPReadBuffer int
	Name              string // base name: NAME-origin, NAME-concierge
	PublicHost        string
	PublicURL         string
	Capacity          int // 0: the number of CPUs
	PlayerWriteFrames int
	NoConcierge       bool
	HookAllow         string // parsed by portier.ParseHookAllow
	// ClusterToken, when set, lets relays and concierges on other hosts
	// join this all-in-one; empty: a new random token at each start.
	ClusterToken string
	LogLevel     string
	HTTP         httpTimeoutConfig
	// NoCDNEdge leaves out the embedded CDN edge (viewers' segments then
	// go to `portier cdn-edge` processes only).
	NoCDNEdge bool
	rtspPullConfig
	securityConfig
	hlsRewriteConfig
}

func (c *runConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the SQLite database, recordings and the concierge's supervisord")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "address of the web UI, REST API, hooks and HTTP-FLV playback")
	fs.StringVar(&c.RTMPAddr, "rtmp-addr", ":1935", "RTMP address for encoders and players")
	fs.StringVar(&c.RTSPAddr, "rtsp-addr", ":8554", "RTSP address for encoders and players (empty: no RTSP)")
	fs.StringVar(&c.RTSPUDPAddr, "rtsp-udp-addr", ":8000", "UDP address for RTSP's RTP (RTCP on the next port); empty: RTSP over TCP only")
	fs.IntVar(&c.RTSPUDPReadBuffer, "rtsp-udp-read-buffer", rtsp.DefaultUDPReadBuffer, rtspUDPReadBufferHelp)
	fs.StringVar(&c.Name, "name", defaultNodeName(), "base name of this host's nodes (NAME-origin, NAME-concierge)")
	fs.StringVar(&c.PublicHost, "public-host", "", "host name in ingest and play URLs (default: the host of each request)")
	fs.StringVar(&c.PublicURL, "public-url", "", publicURLHelp)
	fs.IntVar(&c.PlayerWriteFrames, "player-write-frames", 1, playerWriteFramesHelp)
	fs.IntVar(&c.Capacity, "capacity", 0, "CPU cores the embedded concierge offers tasks (default: the number of CPUs); "+capacityCostHelp)
	fs.BoolVar(&c.NoConcierge, "no-concierge", false, "do not start the embedded concierge (tasks stay pending until one registers)")
	fs.StringVar(&c.HookAllow, "hook-allow", "", hookAllowHelp)
	fs.StringVar(&c.ClusterToken, "cluster-token", "", "shared secret for relays, concierges and media-server hooks that join this all-in-one from outside (default: a new random one at each start, known only to the embedded roles)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.NoCDNEdge, "no-cdn-edge", false, "do not start the embedded CDN edge (viewers' segment requests then go to `portier cdn-edge` processes that join with --cluster-token)")
	c.rtspPullConfig.flags(fs, "")
	c.securityConfig.flags(fs)
	c.hlsRewriteConfig.flags(fs)
	c.HTTP.flags(fs)
}

func (c *runConfig) validate() error {
	var p problems
	p.add(checkRequired("data-dir", c.DataDir, "the directory for the SQLite database and recordings, e.g. ./data"))
	p.add(checkListenAddr("http-addr", c.HTTPAddr, ":8080"))
	if _, err := portOf(c.RTMPAddr); err != nil {
		p.add(invalid("rtmp-addr", "--rtmp-addr %v", err))
	}
	if c.RTSPAddr != "" {
		p.add(checkListenAddr("rtsp-addr", c.RTSPAddr, ":8554 (or empty for no RTSP)"))
	}
	if c.RTSPAddr != "" && c.RTSPUDPAddr != "" {
		p.add(checkRTSPUDPAddr(c.RTSPUDPAddr))
	}
	p.add(checkRTSPUDPReadBuffer(c.RTSPUDPReadBuffer))
	p.add(c.rtspPullConfig.validate())
	p.add(checkRequired("name", c.Name, "the base name of this host's nodes, e.g. studio-1"))
	if c.Name != "" {
		p.add(checkNodeName(c.Name, "studio-1"))
	}
	p.add(checkPublicHost(c.PublicHost))
	p.add(checkPublicURL(c.PublicURL))
	p.add(checkCapacity(c.Capacity, "the number of CPUs"))
	p.add(checkPlayerWriteFrames(c.PlayerWriteFrames))
	p.add(checkHookAllow(c.HookAllow))
	p.add(checkLogLevel(c.LogLevel))
	c.securityConfig.validate(&p)
	c.hlsRewriteConfig.validate(&p)
	c.HTTP.validate(&p)
	return p.err()
}

// runAll is `portier run`: the control plane, an origin relay and a concierge
// in one process, on SQLite in --data-dir. Its roles call the control plane
// on loopback with a cluster token made for this process; loopback alone
// is trusted for nothing (media-server hooks: --hook-allow).
func runAll(ctx context.Context, args []string) error {
	cfg, err := loadConfig[runConfig]("run", args)
	if err != nil {
		return err
	}
	// A part that cannot go on (a node name taken by another live node)
	// ends the whole process: stopRun ends the others before runAll returns.
	ctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	fatal := make(chan error, 1)
	logger, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	// The data dir holds the database (keys, password hashes) and the
	// concierge's task files: this user's alone, and one process's.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create --data-dir: %w", err)
	}
	dataAbs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	unlock, err := dirlock.Lock(dataAbs, "portier run")
	if err != nil {
		return err
	}
	defer unlock()

	store, release, err := openControlStore(ctx, filepath.Join(dataAbs, "portier.db"), 1)
	if err != nil {
		return err
	}
	defer release()
	defer store.Close()
	adminPW := os.Getenv("PORTIER_ADMIN_PASSWORD")
	pw, created, err := store.EnsureAdmin(ctx, adminPW)
	if err != nil {
		return fmt.Errorf("create first admin: %w", err)
	}

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
	}
	defer httpLn.Close()
	httpPort := httpLn.Addr().(*net.TCPAddr).Port
	control := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	rtspPort := 0 // no RTSP play URLs without RTSP
	if cfg.RTSPAddr != "" {
		if rtspPort, err = portOf(cfg.RTSPAddr); err != nil {
			return fmt.Errorf("--rtsp-addr: %w", err)
		}
	}
	rtmpPort, err := portOf(cfg.RTMPAddr)
	if err != nil {
		return fmt.Errorf("--rtmp-addr: %w", err)
	}
	token := cfg.ClusterToken
	if token == "" {
		token = randomToken()
	}
	allow, err := portier.ParseHookAllow(cfg.HookAllow)
	if err != nil {
		return fmt.Errorf("--hook-allow: %w", err)
	}

	// The HLS origin is mounted on the HTTP address under /hls/s/, with
	// its files in DATA/hls; HLS tasks PUT to it like to a separate one.
	hlsBackend, err := hlsorigin.NewFSBackend(filepath.Join(dataAbs, "hls"))
	if err != nil {
		return err
	}
	hlsOrigin, err := hlsorigin.New(hlsorigin.Params{Backend: hlsBackend, ClusterToken: token, Logger: logger})
	if err != nil {
		return err
	}
	if err := hlsOrigin.Start(ctx); err != nil {
		return fmt.Errorf("embedded hls origin: %w", err)
	}
	defer hlsOrigin.Close()

	sec, err := cfg.securityConfig.params()
	if err != nil {
		return err
	}
	srv, err := portier.New(portier.Params{
		Store: store, ClusterToken: token, Logger: logger, Security: sec,
		PublicHost: cfg.PublicHost, RTMPPort: rtmpPort, RTSPPort: rtspPort,
		PublicURL: publicURL(cfg.PublicURL, cfg.PublicHost, "127.0.0.1", httpPort),
		Hooks:     portier.HookParams{Allow: allow},
		Live: portier.LiveParams{Compile: compile.Env{
			RelayRTMPURL: "rtmp://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(rtmpPort)),
			RecordDir:    filepath.Join(dataAbs, "recordings"),
			HLSOriginURL: control,
		}},
	})
	if err != nil {
		return err
	}
	srv.StartBackground(ctx)
	// Shutdown order: the HTTP server stops first (below), then the
	// background work (this Close waits for it), then the store (deferred
	// above, so it runs after).
	defer srv.Close()
	srv.Metrics().Registry.MustRegister(hlsOrigin.Collectors()...)

	// The CDN edge shares the HTTP address and the /hls/s/ paths with the
	// origin (see allInOneHandler) and fetches from it over loopback, so
	// viewer URLs look the same as with a separate edge.
	var edge *cdnedge.Edge
	edgeHandler := http.Handler(http.NotFoundHandler())
	if !cfg.NoCDNEdge {
		if edge, err = cdnedge.New(cdnedge.Params{Origins: []string{control}, ClusterToken: token, Logger: logger}); err != nil {
			return err
		}
		defer edge.Close()
		srv.Metrics().Registry.MustRegister(edge.Collectors()...)
		edgeHandler = edge.Handler()
	}
	// The playlist rewriter reads the embedded origin over loopback.
	if err := cfg.hlsRewriteConfig.mount(ctx, srv, []string{control}, token, logger); err != nil {
		return err
	}

	pulls, err := cfg.pulls()
	if err != nil {
		return err
	}
	rel, err := relay.New(relay.Params{
		Role: relay.RoleOrigin, Name: cfg.Name + "-origin", RTMPAddr: cfg.RTMPAddr, RTSPAddr: cfg.RTSPAddr,
		RTSPUDPAddr: cfg.RTSPUDPAddr, RTSPUDPReadBuffer: cfg.RTSPUDPReadBuffer,
		ControlURL: control, ClusterToken: token, Logger: logger, RTSPPulls: pulls,
		PlayerWriteFrames: cfg.PlayerWriteFrames,
		AdvertiseHTTP:     net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		// The relay API is served only through the control plane, which
		// checks for an admin or the cluster token (MountRelay).
		APIAuth: func(h http.Handler) http.Handler { return h },
	})
	if err != nil {
		return err
	}
	if err := rel.Start(ctx); err != nil {
		return err
	}
	defer rel.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	// The concierge stops when run returns for any reason (not only on a
	// signal), so the wait above never hangs with its supervisord running.
	cctx, stopConcierge := context.WithCancel(ctx)
	defer stopConcierge()
	if !cfg.NoConcierge {
		c, err := concierge.New(concierge.Params{
			Control: control, ClusterToken: token, Name: cfg.Name + "-concierge", Capacity: cfg.Capacity,
			RelayRTMP: net.JoinHostPort("127.0.0.1", strconv.Itoa(rtmpPort)), // host:port: announced as the node's rtmp_address
			DataDir:   filepath.Join(dataAbs, "concierge"), Logger: logger,
			NoHandoff: true, // the only concierge: nobody to hand tasks to
		})
		if err != nil {
			return err
		}
		warnCapacity(ctx, srv, c.Capacity(), publicURL(cfg.PublicURL, cfg.PublicHost, "127.0.0.1", httpPort), logger)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(cctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("embedded concierge stopped", "err", err)
				if errors.Is(err, concierge.ErrNameTaken) {
					fatal <- fmt.Errorf("embedded concierge: %w", err)
				}
			}
		}()
	}

	hlsAgent, err := hlsOriginAgent(hlsOrigin, control, token, cfg.Name+"-hls-origin", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)), logger)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		hlsAgent.Run(cctx)
		if err := hlsAgent.Err(); err != nil {
			select {
			case fatal <- fmt.Errorf("embedded hls origin: %w", err):
			default: // another part already ends the run
			}
		}
	}()

	if edge != nil {
		// Viewers fetch segments from the address the edge registers (the
		// playlist rewriter writes it into their playlists): the public
		// host when there is one.
		edgeHost := "127.0.0.1"
		if cfg.PublicHost != "" {
			edgeHost = cfg.PublicHost
		}
		edgeAgent, err := cdnEdgeAgent(edge, control, token, cfg.Name+"-cdn-edge", net.JoinHostPort(edgeHost, strconv.Itoa(httpPort)), cdnEdgeDefaultCapacity, logger)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			edgeAgent.Run(cctx)
			if err := edgeAgent.Err(); err != nil {
				select {
				case fatal <- fmt.Errorf("embedded cdn edge: %w", err):
				default: // another part already ends the run
				}
			}
		}()
	}

	srv.MountRelay(rel.HTTPHandler())
	hs := httpserve.NewServer(allInOneHandler(srv.Handler(), rel.HTTPHandler(), hlsOrigin.Handler(), edgeHandler), cfg.HTTP.timeouts())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(httpLn) }()

	host := cfg.PublicHost
	if host == "" {
		host = "127.0.0.1"
	}
	web := "http://" + net.JoinHostPort(host, strconv.Itoa(httpPort))
	fmt.Printf("Portier is running (all roles, SQLite in %s)\n", dataAbs)
	fmt.Printf("  web UI and API  %s/  (API under /api/v1, OpenAPI at /api/v1/openapi.json)\n", web)
	fmt.Printf("  RTMP            rtmp://%s/live/NAME?key=KEY (publish), rtmp://%s/live/NAME (play)\n",
		net.JoinHostPort(host, strconv.Itoa(rtmpPort)), net.JoinHostPort(host, strconv.Itoa(rtmpPort)))
	if cfg.RTSPAddr != "" {
		if p, err := portOf(cfg.RTSPAddr); err == nil {
			fmt.Printf("  RTSP            rtsp://%s/live/NAME\n", net.JoinHostPort(host, strconv.Itoa(p)))
		}
	}
	fmt.Printf("  HTTP-FLV        %s/live/NAME.flv\n", web)
	fmt.Printf("  HLS origin      %s/hls/s/STREAM/ (files in %s)\n", web, filepath.Join(dataAbs, "hls"))
	if edge != nil {
		fmt.Printf("  CDN edge        %s/hls/s/STREAM/…?exp=…&sig=… (signed viewer URLs)\n", web)
	}
	fmt.Printf("  HLS viewers     %s/hls/APP/NAME/master.m3u8 (the stream's play.hls in the API)\n", web)
	switch {
	case created && adminPW == "":
		fmt.Printf("  first login     admin / %s   (shown once: change it in the UI)\n", pw)
	case created:
		fmt.Printf("  first login     admin / the password in PORTIER_ADMIN_PASSWORD\n")
	}

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-rel.Fatal():
		stopRun()
		_ = hs.Close()
		return fmt.Errorf("embedded origin: %w", rel.Err())
	case err := <-fatal:
		stopRun()
		_ = hs.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
}

// warnCapacity logs one WARN line when the enabled task configs need more
// CPU, with all their streams live, than the embedded concierge's capacity
// (cores): the tasks that do not fit would wait pending. It names both
// figures and the two ways out.
func warnCapacity(ctx context.Context, srv *portier.Server, cores int, control string, logger *slog.Logger) {
	d, err := srv.TaskConfigDemand(ctx)
	if err != nil {
		logger.Warn("cannot sum what the enabled task configs need of the embedded concierge", "err", err)
		return
	}
	if d.Cost <= taskcost.FromCores(cores) {
		return
	}
	logger.Warn("the enabled task configs need more CPU than the embedded concierge has: tasks that do not fit will wait pending; "+
		"raise --capacity (cores), or add a concierge on another host (portier concierge --control "+control+
		" --cluster-token T, with the same --cluster-token given to portier run)",
		"need_cores", taskcost.Format(d.Cost), "capacity_cores", cores, "configs", d.Configs)
}

// allInOneHandler serves the control plane and, on the same address, the
// relay's HTTP-FLV playback (*.flv), the HLS origin and the CDN edge. Both
// HLS roles use the /hls/s/ paths: requests with an Authorization header
// (HLS tasks' uploads, the cluster token's reads, the edge's own fills)
// and every write go to the origin; viewers' GET, HEAD and OPTIONS, which
// never carry one, go to the edge, which checks their signed URLs. The
// relay's own API, metrics and probes are under /relay/, served by the
// control plane (portier.Server.MountRelay) so that its authentication
// guards the relay API.
func allInOneHandler(control, relayHTTP, hlsOrigin, cdnEdge http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, hlsorigin.PathPrefix) && isViewerRequest(r):
			cdnEdge.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, hlsorigin.PathPrefix):
			hlsOrigin.ServeHTTP(w, r)
		case strings.HasSuffix(r.URL.Path, ".flv") && strings.Count(r.URL.Path, "/") == 2:
			relayHTTP.ServeHTTP(w, r)
		default:
			control.ServeHTTP(w, r)
		}
	})
}

// isViewerRequest tells the embedded edge's requests from the origin's.
func isViewerRequest(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.Header.Get("Authorization") == ""
	}
	return false
}

// portOf is the port of addr ([host]:port), for URLs: they need the real
// port, so 0 (any free port) is refused.
func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q: want [host]:port, e.g. :1935", addr)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("%q: port must be 1-65535 (port 0 is not supported here: URLs need the real port)", addr)
	}
	return n, nil
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
