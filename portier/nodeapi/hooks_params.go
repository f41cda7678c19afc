package nodeapi

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/portier/portier/portier/live"
)

// hookDialects are the names HookParams maps use.
var hookDialects = map[string]bool{live.DialectNative: true, live.DialectSRS: true, live.DialectNginx: true, live.DialectMediaMTX: true}

// splitDialectList splits "dialect=v1,v2;dialect=v3" into dialect -> values.
func splitDialectList(s, what string) (map[string][]string, error) {
	out := map[string][]string{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, vals, ok := strings.Cut(part, "=")
		d = strings.TrimSpace(d)
		if !ok || !hookDialects[d] {
			return nil, fmt.Errorf("%s %q: write DIALECT=VALUE, with DIALECT one of native, srs, nginx-rtmp, mediamtx", what, part)
		}
		for v := range strings.SplitSeq(vals, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out[d] = append(out[d], v)
			}
		}
	}
	return out, nil
}

// mediaServerDialects are the dialects of /hooks/*: a --hook-allow list
// without DIALECT= applies to them (not to the native node API).
var mediaServerDialects = []string{live.DialectSRS, live.DialectNginx, live.DialectMediaMTX}

// ParseHookAllow parses the allow-lists of --hook-allow into
// HookParams.Allow: "127.0.0.1/32,10.0.0.0/8" allows those networks for
// every media-server dialect (SRS, nginx-rtmp, MediaMTX: /hooks/*), and
// "srs=10.0.0.0/8,192.168.1.7;nginx-rtmp=127.0.0.1" per dialect (native
// is the node API of our own relays). Both forms mix: parts separated by
// ';'. A bare address means that address alone. The concierge API is never
// opened by an allow-list.
func ParseHookAllow(s string) (map[string][]netip.Prefix, error) {
	var dialectParts, bare []string
	for part := range strings.SplitSeq(s, ";") {
		if strings.Contains(part, "=") {
			dialectParts = append(dialectParts, part)
		} else if part = strings.TrimSpace(part); part != "" {
			bare = append(bare, part)
		}
	}
	lists, err := splitDialectList(strings.Join(dialectParts, ";"), "hook allow-list")
	if err != nil {
		return nil, err
	}
	for _, b := range bare {
		for _, d := range mediaServerDialects {
			for v := range strings.SplitSeq(b, ",") {
				if v = strings.TrimSpace(v); v != "" {
					lists[d] = append(lists[d], v)
				}
			}
		}
	}
	out := map[string][]netip.Prefix{}
	for d, vals := range lists {
		for _, v := range vals {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				a, aerr := netip.ParseAddr(v)
				if aerr != nil {
					return nil, fmt.Errorf("hook allow-list for %s: %q is neither a CIDR (10.0.0.0/8) nor an address", d, v)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out[d] = append(out[d], p.Masked())
		}
	}
	return out, nil
}

// ParseOriginTTL parses a flag such as --hook-origin-ttl
// "mediamtx=60s;nginx-rtmp=90s" into HookParams.OriginTTL.
func ParseOriginTTL(s string) (map[string]time.Duration, error) {
	lists, err := splitDialectList(s, "hook origin TTL")
	if err != nil {
		return nil, err
	}
	out := map[string]time.Duration{}
	for d, vals := range lists {
		if len(vals) != 1 {
			return nil, fmt.Errorf("hook origin TTL for %s: give one duration", d)
		}
		ttl, err := time.ParseDuration(vals[0])
		if err != nil || ttl < time.Second {
			return nil, fmt.Errorf("hook origin TTL for %s: %q is not a duration of at least 1s (like 60s)", d, vals[0])
		}
		out[d] = ttl
	}
	return out, nil
}
