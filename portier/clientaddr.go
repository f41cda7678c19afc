package portier

import (
	"fmt"
	"net/netip"

	"github.com/portier/portier/models"
)

// Client addresses. The address a request comes from is recorded in audit
// events and sessions and keys login throttling, so it must not be
// forgeable: X-Forwarded-For and X-Real-IP are believed only when the TCP
// peer is one of Params.Security.TrustedProxies (none by default; gin
// itself would trust every peer). clientAddr is the one function that
// answers "who is this"; nothing else reads those headers.

// ParseTrustedProxies parses a comma-separated list of networks (CIDR) or
// single addresses, e.g. "10.0.0.0/8,192.168.1.7". Empty is none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) { return models.ParseNetworks(s) }

// configureProxies tells gin which peers' forwarding headers to believe.
func (s *Server) configureProxies() error {
	list := make([]string, len(s.p.Security.TrustedProxies))
	for i, p := range s.p.Security.TrustedProxies {
		list[i] = p.String()
	}
	s.engine.TrustedPlatform = ""
	s.engine.ForwardedByClientIP = len(list) > 0
	s.engine.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	if len(list) == 0 {
		list = nil // trust no peer
	}
	if err := s.engine.SetTrustedProxies(list); err != nil {
		return fmt.Errorf("trusted proxies: %w", err)
	}
	return nil
}
