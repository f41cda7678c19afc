package main

import (
	"flag"
	"time"

	"github.com/portier/portier/media/httpserve"
)

// httpTimeoutConfig is the HTTP server timeouts of a role's listener
// (every role has the same three flags).
type httpTimeoutConfig struct {
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
}

func (c *httpTimeoutConfig) flags(fs *flag.FlagSet) {
	d := httpserve.DefaultTimeouts()
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", d.Read, "longest time to read one HTTP request, body included (cuts drip-fed bodies)")
	fs.DurationVar(&c.WriteTimeout, "http-write-timeout", d.Write, "longest time to write one HTTP response; HTTP-FLV streams are exempt and bound each write instead")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", d.Idle, "how long an idle keep-alive HTTP connection stays open")
}

func (c *httpTimeoutConfig) validate(p *problems) {
	p.add(checkPositive("http-read-timeout", c.ReadTimeout, "30s"))
	p.add(checkPositive("http-write-timeout", c.WriteTimeout, "60s"))
	p.add(checkPositive("http-idle-timeout", c.IdleTimeout, "2m"))
}

func (c httpTimeoutConfig) timeouts() httpserve.Timeouts {
	return httpserve.Timeouts{Read: c.ReadTimeout, Write: c.WriteTimeout, Idle: c.IdleTimeout}
}
