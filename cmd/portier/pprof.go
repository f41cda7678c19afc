package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

const pprofAddrHelp = "loopback address serving Go's profiles under /debug/pprof/ (empty: none), e.g. 127.0.0.1:6060; " +
	"profiles reveal the process's internals, so only a loopback host is accepted"

// checkPprofAddr checks --pprof-addr: a listen address whose host is a
// loopback IP or localhost.
func checkPprofAddr(addr string) error {
	if err := checkListenAddr("pprof-addr", addr, "127.0.0.1:6060"); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return badValue("pprof-addr", addr, "want a loopback host (profiles reveal internals), e.g. 127.0.0.1:6060")
	}
	return nil
}

// servePprof serves net/http/pprof on addr until ctx ends. It returns once
// the listener is bound, so a bad address fails the start.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// A CPU profile or trace runs for its ?seconds=: no write timeout.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "err", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}
