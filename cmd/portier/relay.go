package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/media/rtsp"
)

// relayConfig is the configuration of `portier relay`: an origin (accepts
// publishes, serves edges and players) or an edge (serves players, pulls
// from origins, forwards publishes).
type relayConfig struct {
	Role         string // relay.RoleOrigin or relay.RoleEdge
	Control      string // control plane base URL; required for origins
	ClusterToken string
	RTMPAddr     string
	RTSPAddr     string // empty: no RTSP
	RTSPUDPAddr  string // empty: RTSP over TCP only
	// RTSPUDPReadBuffer: bytes of receive buffer per RTSP UDP socket
	// (-1: the OS default).
	RTSPUDPReadBuffer int
	HTTPAddr          string
	Origins           string // HOST:PORT,... (see staticOrigins)
	Name              string
	AdvertiseAddr     string
	AdvertiseHTTP     string
	NoOriginTimeout   time.Duration
	IdleTimeout       time.Duration
	Capacity          int
	LogLevel          string
	PprofAddr         string
	PlayerWriteFrames int
	HTTP              httpTimeoutConfig
	rtspPullConfig
}

func (c *relayConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Role, "role", "", "origin (accepts publishes, serves edges) or edge (serves players, pulls from origins, forwards publishes)")
	fs.StringVar(&c.Control, "control", "", controlHelp+" (required for origins)")
	fs.StringVar(&c.ClusterToken, "cluster-token", "", "cluster token for the control plane's node API")
	fs.StringVar(&c.RTMPAddr, "rtmp-addr", ":1935", "RTMP listen address")
	fs.StringVar(&c.RTSPAddr, "rtsp-addr", ":8554", "RTSP listen address (empty: no RTSP)")
	fs.StringVar(&c.RTSPUDPAddr, "rtsp-udp-addr", "", "UDP address for RTSP's RTP (RTCP on the next port); empty: RTSP over TCP only")
	fs.IntVar(&c.RTSPUDPReadBuffer, "rtsp-udp-read-buffer", rtsp.DefaultUDPReadBuffer, rtspUDPReadBufferHelp)
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8081", "HTTP listen address (HTTP-FLV, /api/v1/streams, /metrics, /healthz, /readyz)")
	fs.StringVar(&c.Origins, "origins", "", "static origin list HOST:PORT,... used by edges when the control plane is unreachable")
	fs.StringVar(&c.Name, "name", "", "node name, unique among live nodes (default: HOST-ROLE, plus -PORT when the --rtmp-addr port is not 1935, e.g. studio-1-edge)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "RTMP host:port other nodes use to reach this relay (default: the listen address, with 127.0.0.1 for an unspecified host)")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http-addr", "", "HTTP host:port other nodes use to reach this relay (default: derived like --advertise-addr)")
	fs.DurationVar(&c.NoOriginTimeout, "no-origin-timeout", 10*time.Second, "edges: how long players wait when no origin has their stream before they are told it ended")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 5*time.Second, "edges: how long an upstream session stays open after its last player left")
	fs.IntVar(&c.Capacity, "capacity", 0, "capacity reported at registration (0: unspecified)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", pprofAddrHelp)
	fs.IntVar(&c.PlayerWriteFrames, "player-write-frames", 1, playerWriteFramesHelp)
	c.rtspPullConfig.flags(fs, "origins: ")
	c.HTTP.flags(fs)
}

func (c *relayConfig) validate() error {
	var p problems
	switch c.Role {
	case relay.RoleOrigin, relay.RoleEdge:
	case "":
		p.add(missing("role", "origin or edge"))
	default:
		p.add(badValue("role", c.Role, "want origin or edge"))
	}
	switch {
	case c.Control != "":
		p.add(checkControl(c.Control))
	case c.Role == relay.RoleOrigin:
		p.add(invalid("control", "an origin needs --control (publishes are authorised by the control plane), e.g. --control http://control:8080"))
	case c.Role == relay.RoleEdge && len(c.staticOrigins()) == 0:
		p.add(invalid("control", "an edge needs --control or --origins to find origins, e.g. --control http://control:8080"))
	}
	for _, o := range c.staticOrigins() {
		if !isDialAddr(o) {
			p.add(invalid("origins", "--origins entry %q: want host:port, e.g. origin-1:1935", o))
		}
	}
	if c.Name == "" && (c.Role == relay.RoleOrigin || c.Role == relay.RoleEdge) {
		c.Name = roleNodeName(c.Role, c.RTMPAddr, "1935")
	}
	if c.Name != "" { // empty only when --role is bad, which is reported
		p.add(checkNodeName(c.Name, "edge-1"))
	}
	p.add(checkListenAddr("rtmp-addr", c.RTMPAddr, ":1935"))
	if c.RTSPAddr != "" {
		p.add(checkListenAddr("rtsp-addr", c.RTSPAddr, ":8554 (or empty for no RTSP)"))
	}
	p.add(checkRTSPUDPReadBuffer(c.RTSPUDPReadBuffer))
	if c.RTSPUDPAddr != "" {
		p.add(checkRTSPUDPAddr(c.RTSPUDPAddr))
	}
	if c.HTTPAddr != "" {
		p.add(checkListenAddr("http-addr", c.HTTPAddr, ":8081"))
	}
	p.add(c.rtspPullConfig.validate())
	if c.RTSPPull != "" && c.Role == relay.RoleEdge {
		p.add(invalid("rtsp-pull", "--rtsp-pull is for origins: an edge serves what origins hold"))
	}
	if c.AdvertiseAddr != "" {
		p.add(checkDialAddr("advertise-addr", c.AdvertiseAddr, "origin-1.example:1935"))
	}
	if c.AdvertiseHTTP != "" {
		p.add(checkDialAddr("advertise-http-addr", c.AdvertiseHTTP, "origin-1.example:8081"))
	}
	p.add(checkPositive("no-origin-timeout", c.NoOriginTimeout, "10s"))
	p.add(checkPositive("idle-timeout", c.IdleTimeout, "5s"))
	p.add(checkCapacity(c.Capacity, "unspecified"))
	p.add(checkLogLevel(c.LogLevel))
	if c.PprofAddr != "" {
		p.add(checkPprofAddr(c.PprofAddr))
	}
	p.add(checkPlayerWriteFrames(c.PlayerWriteFrames))
	c.HTTP.validate(&p)
	return p.err()
}

const rtspUDPReadBufferHelp = "receive buffer in bytes of each RTSP UDP socket (the shared RTP/RTCP ones and each publisher track's); " +
	"-1 keeps the OS default. Linux grants at most net.core.rmem_max unless the process has CAP_NET_ADMIN; the relay logs what it got"

// checkRTSPUDPReadBuffer checks --rtsp-udp-read-buffer.
func checkRTSPUDPReadBuffer(n int) error {
	if n < -1 || (n >= 0 && n < 4096) || n > 1<<30 {
		return badValue("rtsp-udp-read-buffer", strconv.Itoa(n), "want bytes between 4096 and 1073741824, e.g. 4194304 (4 MiB), or -1 for the OS default")
	}
	return nil
}

// checkRTSPUDPAddr checks --rtsp-udp-addr: RTSP wants an even RTP port and
// takes the next one for RTCP; port 0 picks a free pair.
func checkRTSPUDPAddr(addr string) error {
	if err := checkListenAddr("rtsp-udp-addr", addr, ":8000"); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	if n, _ := strconv.Atoi(port); n%2 != 0 || n == 65534 {
		return badValue("rtsp-udp-addr", addr, "want an even RTP port below 65534 (RTCP takes the next one) or 0 for a free pair, e.g. :8000")
	}
	return nil
}

// staticOrigins is --origins as a list, without empty entries.
func (c *relayConfig) staticOrigins() []string {
	var out []string
	for _, o := range strings.Split(c.Origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// runRelay runs `portier relay --role origin|edge`.
func runRelay(ctx context.Context, args []string) error {
	cfg, err := loadConfig[relayConfig]("relay", args)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	pulls, err := cfg.pulls()
	if err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, logger); err != nil {
			return err
		}
	}
	r, err := relay.New(relay.Params{
		RTSPPulls:         pulls,
		Role:              cfg.Role,
		Name:              cfg.Name,
		RTMPAddr:          cfg.RTMPAddr,
		RTSPAddr:          cfg.RTSPAddr,
		RTSPUDPAddr:       cfg.RTSPUDPAddr,
		RTSPUDPReadBuffer: cfg.RTSPUDPReadBuffer,
		HTTPAddr:          cfg.HTTPAddr,
		AdvertiseAddr:     cfg.AdvertiseAddr,
		AdvertiseHTTP:     cfg.AdvertiseHTTP,
		ControlURL:        cfg.Control,
		ClusterToken:      cfg.ClusterToken,
		StaticOrigins:     cfg.staticOrigins(),
		NoOriginTimeout:   cfg.NoOriginTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		Capacity:          cfg.Capacity,
		PlayerWriteFrames: cfg.PlayerWriteFrames,
		HTTPTimeouts:      cfg.HTTP.timeouts(),
		Logger:            logger,
	})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	logger.Info("relay started", "role", cfg.Role, "name", cfg.Name, "rtmp", r.RTMPAddr().String(), "http", r.HTTPAddr().String())
	select {
	case <-ctx.Done():
	case <-r.Fatal():
		_ = r.Close()
		return r.Err()
	}
	logger.Info("relay stopping")
	if err := r.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
