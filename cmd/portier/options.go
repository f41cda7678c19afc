package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/media/controlclient"
)

// roleConfig is the typed configuration of one command (run, serve, relay,
// concierge). flags registers its options with their defaults and help;
// validate checks every value that can be checked without side effects (no
// listening, no connecting, no files) and reports every bad option at once.
type roleConfig interface {
	flags(fs *flag.FlagSet)
	validate() error
}

// loadConfig is the configuration T of command from args, the environment
// and --config (see parseFlags for the precedence), validated. Every
// command loads its configuration through here, and so do the tests of the
// sample configs. -h returns flag.ErrHelp unwrapped, so main exits 0.
func loadConfig[T any, P interface {
	*T
	roleConfig
}](command string, args []string) (*T, error) {
	c := P(new(T))
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	c.flags(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// optionError is one invalid option. Option is the flag name without
// dashes; the message names it as --option, says what was given (never a
// secret) and what would be accepted.
type optionError struct {
	Option string
	msg    string
}

func (e *optionError) Error() string { return e.msg }

// badValue is `--OPTION "VALUE": WANT`.
func badValue(option, value, want string) *optionError {
	return &optionError{option, fmt.Sprintf("--%s %q: %s", option, value, want)}
}

// missing is `--OPTION is required: WHY`.
func missing(option, why string) *optionError {
	return &optionError{option, fmt.Sprintf("--%s is required: %s", option, why)}
}

// invalid is any other message about option; it must name --option.
func invalid(option, format string, args ...any) *optionError {
	return &optionError{option, fmt.Sprintf(format, args...)}
}

// problems collects the invalid options of one configuration, so that one
// failed start lists them all instead of one per attempt.
type problems []error

func (p *problems) add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

func (p problems) err() error { return errors.Join(p...) }

// playerWriteFramesHelp is the help of --player-write-frames.
const playerWriteFramesHelp = "video frames per write to each RTMP player and HTTP-FLV viewer, 1-4: 1 writes every frame as it arrives; " +
	"more cost less CPU per player (at 25 fps 2 about 40 % less, 3 about half) and hold the first frame of each write back by up to that many frame intervals less one (at most 100 ms)"

// checkPlayerWriteFrames checks --player-write-frames.
func checkPlayerWriteFrames(n int) error {
	if n < 1 || n > 4 {
		return badValue("player-write-frames", strconv.Itoa(n), "want 1 to 4 video frames per write, e.g. 1 (lowest latency) or 2 (less CPU)")
	}
	return nil
}

// checkListenAddr checks an address to listen on: [host]:port with a port
// of 0-65535 (0 picks a free port).
func checkListenAddr(option, addr, example string) error {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return badValue(option, addr, "want [host]:port to listen on, e.g. "+example)
	}
	return nil
}

// checkDialAddr checks an address other nodes or this one connect to:
// host:port with a host and a port of 1-65535.
func checkDialAddr(option, addr, example string) error {
	if !isDialAddr(addr) {
		return badValue(option, addr, "want host:port that other hosts can reach, e.g. "+example)
	}
	return nil
}

func isDialAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	return err == nil && host != "" && perr == nil && n > 0 && n <= 65535
}

// checkURL checks a base URL: one of schemes, with a host. The message
// shows the URL without user info or query, which may hold secrets.
func checkURL(option, raw, example string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err == nil && slices.Contains(schemes, u.Scheme) && u.Host != "" {
		return nil
	}
	shown := controlclient.RedactURL(raw)
	if err != nil && strings.Contains(raw, "@") {
		shown = "(not shown: it may hold a password)"
	}
	return badValue(option, shown, fmt.Sprintf("want a URL (%s://) with a host, e.g. %s", strings.Join(schemes, ":// or "), example))
}

// checkControl checks --control: one control-plane base URL, or several
// replicas' separated by commas (the clients fail over between them).
func checkControl(raw string) error {
	n := 0
	for _, u := range strings.Split(raw, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		n++
		if err := checkURL("control", u, "http://control:8080 or http://control-0:8080,http://control-1:8080", "http", "https"); err != nil {
			return err
		}
	}
	if n == 0 {
		return badValue("control", raw, "want a URL, or several separated by commas, e.g. http://control-0:8080,http://control-1:8080")
	}
	return nil
}

// controlHelp is the usage of --control on every role that takes it.
const controlHelp = "control plane base URL, or several replicas' separated by commas (calls fail over between them), e.g. http://control:8080"

// checkPositive checks a duration option that must be above zero.
func checkPositive(option string, d time.Duration, example string) error {
	if d <= 0 {
		return badValue(option, d.String(), "want a duration above zero, e.g. "+example)
	}
	return nil
}

// maxCapacity is the largest capacity the control plane accepts at
// registration (portier/nodeapi.go); a larger one would fail every
// registration attempt instead of failing at start.
const maxCapacity = 1_000_000

// capacityCostHelp tells, in a concierge's --capacity help, what tasks
// cost of it (internal/taskcost).
var capacityCostHelp = "a copying task (restream, record, pull) takes " + taskcost.Format(taskcost.Copy) +
	" of a core, an HLS ladder about a core per 640x360 rendition at 30 fps"

// checkCapacity checks a --capacity: 0 means the default (zeroMeans).
func checkCapacity(capacity int, zeroMeans string) error {
	if capacity < 0 || capacity > maxCapacity {
		return badValue("capacity", strconv.Itoa(capacity), fmt.Sprintf("want 0 (%s) or a whole number up to %d, e.g. 8", zeroMeans, maxCapacity))
	}
	return nil
}

// checkLogLevel checks a --log-level.
func checkLogLevel(level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return badValue("log-level", level, "want debug, info, warn or error")
	}
	return nil
}

// checkPublicHost checks a --public-host: a bare host name or IP address,
// because ingest and play URLs are built as scheme://HOST:PORT.
func checkPublicHost(host string) error {
	if host == "" {
		return nil
	}
	if strings.ContainsAny(host, "/@ ") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return badValue("public-host", host, "want a host name or IP address without scheme or port, e.g. stream.example.com")
	}
	return nil
}

// checkRequired checks that a string option is set.
func checkRequired(option, value, why string) error {
	if value == "" {
		return missing(option, why)
	}
	return nil
}

// publicURLHelp is the help of --public-url (serve and run).
const publicURLHelp = "base URL the web UI and REST API are reached at, e.g. https://portier.example.com, for the links webhooks carry " +
	"(recording.finished's download_url); default: http://PUBLIC-HOST:PORT of --http-addr (--public-host, else this host's name; 127.0.0.1 for run)"

// checkPublicURL checks a --public-url: empty, or an http(s) URL with a
// host and no query.
func checkPublicURL(raw string) error {
	if raw == "" {
		return nil
	}
	if u, err := url.Parse(raw); err == nil && (u.RawQuery != "" || u.Fragment != "" || u.User != nil) {
		return badValue("public-url", controlclient.RedactURL(raw), "want a base URL without query, fragment or credentials, e.g. https://portier.example.com")
	}
	return checkURL("public-url", raw, "https://portier.example.com", "http", "https")
}

// publicURL is --public-url, or when it is empty http://HOST:PORT with
// HOST --public-host, else fallbackHost, and PORT the HTTP port (none
// when 0).
func publicURL(flag, publicHost, fallbackHost string, port int) string {
	if flag != "" {
		return strings.TrimRight(flag, "/")
	}
	host := publicHost
	if host == "" {
		host = fallbackHost
	}
	if port == 0 {
		return "http://" + host
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// httpPortOf is the port of a listen address (0 when it has none).
func httpPortOf(addr string) int {
	p, _ := portOf(addr)
	return p
}

// hostName is this host's name ("localhost" when it has none).
func hostName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
