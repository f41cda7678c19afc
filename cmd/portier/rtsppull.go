package main

import (
	"flag"
	"net/url"
	"strings"

	"github.com/portier/portier/media/relay"
)

// rtspPullConfig is --rtsp-pull and --rtsp-pull-transport, the RTSP
// sources an origin pulls itself (`portier relay --role origin` and
// `portier run`).
type rtspPullConfig struct {
	RTSPPull          string // APP/NAME=rtsp://...,... (see pulls)
	RTSPPullTransport string // for all of them: udp, tcp, "" (UDP, then TCP)
}

func (c *rtspPullConfig) flags(fs *flag.FlagSet, who string) {
	fs.StringVar(&c.RTSPPull, "rtsp-pull", "", who+"RTSP sources (cameras) the relay pulls itself, "+
		"with the stream's key as for an encoder (APP/NAME?key=KEY=rtsp://[user:pass@]host[:port]/path,...; percent-encode a comma in a URL as %2C); "+
		"each publish is authorised by the control plane, plays at APP/NAME and is retried with backoff")
	fs.StringVar(&c.RTSPPullTransport, "rtsp-pull-transport", "", "transport of --rtsp-pull sources: udp, tcp, or empty for UDP then TCP")
}

func (c *rtspPullConfig) validate() error {
	switch c.RTSPPullTransport {
	case "", "udp", "tcp":
	default:
		return badValue("rtsp-pull-transport", c.RTSPPullTransport, "want udp, tcp, or empty for UDP then TCP")
	}
	_, err := c.pulls()
	return err
}

// pulls is --rtsp-pull as a list of APP/NAME?key=KEY=URL entries
// separated by commas, empty entries skipped. An error names the bad entry
// by its number and path only: the key and the URL (which may hold a
// password) are never shown.
func (c *rtspPullConfig) pulls() ([]relay.RTSPPull, error) {
	const example = "live/cam1?key=KEY=rtsp://10.0.0.7:554/stream1"
	var out []relay.RTSPPull
	for i, e := range strings.Split(c.RTSPPull, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		at := strings.Index(e, "=rtsp://")
		if j := strings.Index(e, "=rtsps://"); at < 0 || (j >= 0 && j < at) {
			at = j
		}
		if at < 0 {
			return nil, invalid("rtsp-pull", "--rtsp-pull entry %d: want APP/NAME?key=KEY=rtsp://host/path, e.g. %s", i+1, example)
		}
		left, u := e[:at], e[at+1:]
		path, rawQuery, _ := strings.Cut(left, "?")
		app, name, okPath := strings.Cut(path, "/")
		q, qerr := url.ParseQuery(rawQuery)
		switch {
		case !okPath || app == "" || name == "" || strings.Contains(name, "/"):
			return nil, invalid("rtsp-pull", "--rtsp-pull entry %d: want APP/NAME?key=KEY=rtsp://host/path, e.g. %s", i+1, example)
		case qerr != nil || q.Get("key") == "":
			return nil, invalid("rtsp-pull", "--rtsp-pull entry %d (%s): the stream's key is required (the control plane authorises the publish), e.g. %s", i+1, path, example)
		}
		if err := checkURL("rtsp-pull", u, "rtsp://10.0.0.7:554/stream1", "rtsp", "rtsps"); err != nil {
			return nil, invalid("rtsp-pull", "--rtsp-pull entry %d (%s): want an rtsp:// URL with a host, e.g. %s", i+1, path, example)
		}
		out = append(out, relay.RTSPPull{Path: path, Key: q.Get("key"), URL: u, Transport: c.RTSPPullTransport})
	}
	return out, nil
}
