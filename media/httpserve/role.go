package httpserve

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Role describes the listener of a media role that serves one path prefix
// (the HLS origin's and the CDN edge's /hls/) beside the usual
// operational endpoints.
type Role struct {
	// Prefix and Serve: requests under Prefix go to Serve unrouted (a
	// ServeMux would clean "..", redirect or 404; the role answers such
	// paths itself).
	Prefix string
	Serve  http.Handler
	// Metrics is served at /metrics.
	Metrics *prometheus.Registry
	// Ready backs /readyz; NotReady answers it when Ready fails.
	Ready    func(context.Context) error
	NotReady func(http.ResponseWriter, *http.Request, error)
}

// Handler is the whole listener: Prefix, GET /healthz (the process
// answers), GET /readyz (Ready) and GET /metrics.
func (ro Role) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ro.Ready(r.Context()); err != nil {
			ro.NotReady(w, r, err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(ro.Metrics, promhttp.HandlerOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, ro.Prefix) {
			ro.Serve.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
