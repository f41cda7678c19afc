package main

import (
	"flag"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
)

// securityConfig holds the hardening options that `serve` and `run` share.
type securityConfig struct {
	TrustedProxies string // comma-separated networks, parsed by portier.ParseTrustedProxies
	TaskURLAllow   string // comma-separated networks, parsed by models.ParseNetworks
	TaskURLDeny    string
}

func (c *securityConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "networks of reverse proxies whose X-Forwarded-For/X-Real-IP name the client, e.g. \"10.0.0.0/8,192.168.1.7\" (default: none; the TCP peer is the client)")
	fs.StringVar(&c.TaskURLAllow, "task-url-allow", "", "networks that task sources and targets may reach although refused by default (link-local, metadata, loopback HTTP), e.g. \"169.254.10.0/24\"")
	fs.StringVar(&c.TaskURLDeny, "task-url-deny", "", "further networks that task sources and targets may not reach, e.g. \"10.20.0.0/16,192.168.0.0/16\" (beats --task-url-allow)")
}

func (c *securityConfig) validate(p *problems) {
	if _, err := portier.ParseTrustedProxies(c.TrustedProxies); err != nil {
		p.add(invalid("trusted-proxies", "--trusted-proxies: %v", err))
	}
	if _, err := models.ParseNetworks(c.TaskURLAllow); err != nil {
		p.add(invalid("task-url-allow", "--task-url-allow: %v", err))
	}
	if _, err := models.ParseNetworks(c.TaskURLDeny); err != nil {
		p.add(invalid("task-url-deny", "--task-url-deny: %v", err))
	}
}

// params is the validated configuration as portier.SecurityParams.
func (c *securityConfig) params() (portier.SecurityParams, error) {
	var (
		sp  portier.SecurityParams
		err error
	)
	if sp.TrustedProxies, err = portier.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return sp, err
	}
	if sp.TaskURLs.Allow, err = models.ParseNetworks(c.TaskURLAllow); err != nil {
		return sp, err
	}
	sp.TaskURLs.Deny, err = models.ParseNetworks(c.TaskURLDeny)
	return sp, err
}
