package portier

import (
	"net/netip"
	"time"

	"github.com/portier/portier/models"
)

// SecurityParams are the control plane's account and input hardening
// settings.
type SecurityParams struct {
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For and X-Real-IP are believed
	// (--trusted-proxies). Empty: none; the TCP peer is the client.
	TrustedProxies []netip.Prefix

	// TaskURLs are the networks task sources and targets may or may not
	// reach beyond the built-in rules (--task-url-allow, --task-url-deny;
	// see models.TaskURLPolicy).
	TaskURLs models.TaskURLPolicy

	// Now is the clock of login throttling (tests inject one); nil is time.Now.
	Now func() time.Time
}
