package cdnedge

import (
	"net/http"
	"strings"
)

// corsPolicy answers cross-origin requests: viewers' players run on other
// sites.
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

// apply sets the response headers of a request with an Origin.
func (c corsPolicy) apply(w http.ResponseWriter, r *http.Request) {
	o := r.Header.Get("Origin")
	if o == "" {
		return
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
		return
	}
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag, Last-Modified, Age, X-Cache")
}

// preflight answers an OPTIONS request (no signature needed: browsers send
// none in a preflight).
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
