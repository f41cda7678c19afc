package hlsrewrite

import (
	"net/http"
	"strings"
)

// corsPolicy answers cross-origin requests: viewers' players run on other
// sites than the control plane.
type corsPolicy struct {
	any     bool
	allowed map[string]bool
}

func newCORSPolicy(origins []string) corsPolicy {
	c := corsPolicy{allowed: map[string]bool{}}
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

// apply sets the CORS headers of a response to a request with an Origin;
// false when that origin is not allowed.
func (c corsPolicy) apply(w http.ResponseWriter, r *http.Request) bool {
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
	h.Set("Access-Control-Expose-Headers", "Content-Length, Age, X-Portier-Pathway")
	return true
}

// preflight answers an OPTIONS request.
func (c corsPolicy) preflight(w http.ResponseWriter, r *http.Request) {
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
