package models

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Task sources (pull) and targets (restream) are URLs that ffmpeg on a
// worker host opens: a user who may create task configs could otherwise
// make workers fetch cloud metadata (169.254.169.254 and friends), other
// link-local services, or the control plane's own token-free endpoints.
// TaskURLPolicy decides which hosts they may name.
//
// Order of the rules (first match wins):
//  1. a path under /internal/ or /hooks/ (the node API and media-server
//     hooks of a control plane) is always refused;
//  2. Deny (--task-url-deny) refuses;
//  3. Allow (--task-url-allow) accepts;
//  4. the built-in denials refuse: link-local 169.254.0.0/16 and
//     fe80::/10, "this network" 0.0.0.0/8 and ::, well-known metadata
//     addresses, and loopback for http(s) (an HLS pull from loopback could
//     only reach this host's own HTTP services);
//  5. everything else is accepted: private camera networks (10/8,
//     172.16/12, 192.168/16, fc00::/7) and loopback RTMP/RTSP/SRT (the
//     relay next to the worker).
//
// Host names are not resolved: a check at save time proves nothing about
// where the name points when the task runs (DNS can change, and workers may
// resolve differently), and it would make the API depend on DNS. Names are
// judged by name: localhost, *.localhost and the metadata names count as
// their addresses; IPv4 in shorthand (2852039166, 0xa9.0xfe..., 169.254.43518)
// is refused, since ffmpeg's resolver accepts it. Operators who need
// stronger guarantees must also filter egress on the worker hosts.
type TaskURLPolicy struct {
	Allow, Deny []netip.Prefix
}

// builtinDenied are refused unless allowed (rule 4).
var builtinDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
}

var loopbacks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// metadataNames resolve to metadata services on the big clouds.
var metadataNames = map[string]netip.Addr{
	"metadata.google.internal":   netip.MustParseAddr("169.254.169.254"),
	"metadata.goog":              netip.MustParseAddr("169.254.169.254"),
	"metadata":                   netip.MustParseAddr("169.254.169.254"),
	"instance-data":              netip.MustParseAddr("169.254.169.254"),
	"instance-data.ec2.internal": netip.MustParseAddr("169.254.169.254"),
}

// ParseNetworks parses a comma-separated list of CIDR networks or single
// addresses (a /32 or /128). Empty is none. Every option that lists
// networks (--task-url-allow/deny, --trusted-proxies) reads it with this.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not a network: want CIDR such as 10.0.0.0/8 or an address such as 192.168.1.7", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network: want CIDR such as 10.0.0.0/8 or an address such as 192.168.1.7", f)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has host bits set: did you mean %s?", f, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// hostAddr is the address a URL host stands for without DNS: an IP
// literal, a loopback or metadata name; ok is false for other names.
func hostAddr(host string) (netip.Addr, bool, error) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false, fmt.Errorf("host %q: IPv6 zones are not allowed", host)
		}
		return a.Unmap(), true, nil
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "localhost.localdomain" || h == "ip6-localhost" || h == "ip6-loopback" {
		return netip.MustParseAddr("127.0.0.1"), true, nil
	}
	if a, ok := metadataNames[h]; ok {
		return a, true, nil
	}
	// A DNS name's last label is never numeric: one that is, or that
	// starts with 0x, is IPv4 shorthand that resolvers still accept.
	labels := strings.Split(h, ".")
	last := labels[len(labels)-1]
	if last == "" || strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return netip.Addr{}, false, fmt.Errorf("host %q: write IPv4 addresses as four decimal numbers, e.g. 192.168.1.10", host)
	}
	return netip.Addr{}, false, nil
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Check refuses u (the value of field) when the policy does not let tasks
// reach it, as a *SpecError that says why and which option changes it.
func (p *TaskURLPolicy) Check(field string, u *url.URL) error {
	path := strings.ToLower(u.EscapedPath())
	if unesc, err := url.PathUnescape(path); err == nil {
		path = strings.ToLower(unesc)
	}
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
	if strings.HasPrefix(path, "/internal/") || strings.HasPrefix(path, "/hooks/") || path == "/internal" || path == "/hooks" {
		return specErr(field, "may not point at a control plane's internal endpoints (%s)", strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)[0])
	}
	a, known, err := hostAddr(u.Hostname())
	if err != nil {
		return specErr(field, "%v", err)
	}
	if !known {
		return nil // a DNS name: not resolved (see TaskURLPolicy)
	}
	return p.checkAddr(field, u.Scheme, u.Hostname(), a)
}

// CheckAddr applies rules 2 to 5 to the address a URL of scheme resolved
// to, for a client that resolves names itself and can check each address
// it connects to (the control plane's webhook deliveries).
func (p *TaskURLPolicy) CheckAddr(field, scheme string, a netip.Addr) error {
	return p.checkAddr(field, scheme, a.String(), a.Unmap())
}

func (p *TaskURLPolicy) checkAddr(field, scheme, host string, a netip.Addr) error {
	if inAny(a, p.Deny) {
		return specErr(field, "host %s is in a network that --task-url-deny refuses", host)
	}
	if inAny(a, p.Allow) {
		return nil
	}
	if inAny(a, builtinDenied) {
		return specErr(field, "host %s is link-local or a cloud metadata address, which tasks and webhooks may not reach; an operator can allow its network with --task-url-allow", host)
	}
	if s := strings.ToLower(scheme); (s == "http" || s == "https") && inAny(a, loopbacks) {
		return specErr(field, "host %s is loopback, where only this host's own HTTP services listen; an operator can allow it with --task-url-allow", host)
	}
	return nil
}

// SetTaskURLPolicy sets the networks task URLs may reach (for this store
// and its transactions; safe to call while the store is in use).
func (s *Store) SetTaskURLPolicy(p TaskURLPolicy) {
	if s.urlPolicy != nil {
		s.urlPolicy.Store(&p)
	}
}

// checkTaskURLs applies the store's TaskURLPolicy to a parsed spec.
func (s *Store) checkTaskURLs(typ string, spec RawJSON) error {
	var field string
	switch typ {
	case TypeRestream:
		field = "target"
	case TypePull:
		field = "source"
	default:
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(spec, &m); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	raw, _ := m[field].(string)
	u, err := url.Parse(raw)
	if err != nil {
		return specErr(field, "is not a URL: %v", err)
	}
	var p *TaskURLPolicy
	if s.urlPolicy != nil {
		p = s.urlPolicy.Load()
	}
	if p == nil {
		p = &TaskURLPolicy{}
	}
	return p.Check(field, u)
}
