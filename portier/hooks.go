package portier

import (
	"net/netip"
	"time"

	"github.com/portier/portier/portier/nodeapi"
)

// HookParams configures the hook endpoints that media servers call and
// the node API (portier/nodeapi).
type HookParams = nodeapi.HookParams

// ParseHookAllow parses --hook-allow (see nodeapi.ParseHookAllow).
func ParseHookAllow(s string) (map[string][]netip.Prefix, error) { return nodeapi.ParseHookAllow(s) }

// ParseOriginTTL parses --hook-origin-ttl (see nodeapi.ParseOriginTTL).
func ParseOriginTTL(s string) (map[string]time.Duration, error) { return nodeapi.ParseOriginTTL(s) }
