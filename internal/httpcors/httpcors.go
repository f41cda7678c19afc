// Package httpcors answers cross-origin requests for the HLS surfaces that
// viewers' players, running on other sites, read: the playlist rewriter
// and the CDN edges.
package httpcors

import (
	"net/http"
	"strings"
)

// Policy is the set of page origins allowed to read; an empty list or
// "*" allows any.
type Policy struct {
	any     bool
	allowed map[string]bool
	expose  string
}

// New returns the policy for origins (scheme://host[:port], "*" for any),
// exposing the response headers expose to the page.
func New(origins []string, expose ...string) Policy {
	c := Policy{allowed: map[string]bool{}, expose: strings.Join(expose, ", ")}
	for _, o := range origins {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "*" {
			c.any = true
		} else if o != "" {
			c.allowed[o] = true
		}
	}
	c.any = c.any || len(c.allowed) == 0
	return c
}

// Apply sets the CORS headers of a response to a request with an Origin;
// false when that origin is not allowed (the caller decides whether to
// answer anyway: the browser keeps the body from the page).
func (c Policy) Apply(w http.ResponseWriter, r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	h := w.Header()
	switch {
	case c.any:
		h.Set("Access-Control-Allow-Origin", "*")
	case c.allowed[o]:
		h.Set("Access-Control-Allow-Origin", o)
		h.Add("Vary", "Origin")
	default:
		h.Add("Vary", "Origin")
		return false
	}
	if c.expose != "" {
		h.Set("Access-Control-Expose-Headers", c.expose)
	}
	return true
}

// Preflight answers an OPTIONS request (after Apply), with 204.
func (c Policy) Preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Allow", "GET, HEAD, OPTIONS")
	if h.Get("Access-Control-Allow-Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
			h.Set("Access-Control-Allow-Headers", rh)
		}
		h.Set("Access-Control-Max-Age", "86400")
	}
	w.WriteHeader(http.StatusNoContent)
}
