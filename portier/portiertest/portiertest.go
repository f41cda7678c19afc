// Package portiertest starts a control plane for tests: a portier.Server on
// a store, served by an httptest server, stopped in order (HTTP, background
// work, store) when the test ends. It replaces the copies of that harness
// the tests of other packages (concierge, contract, e2e, benchmarks) had.
package portiertest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
)

// Options configures Start.
type Options struct {
	// Params of the server; Store is set by Start. A nil Logger discards.
	Params portier.Params
	// Store, if set, is used (and not closed); nil opens a fresh SQLite
	// store in the test's temporary directory (closed at the end).
	Store *models.Store
	// NoBackground leaves the reaper and the scheduler stopped.
	NoBackground bool
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	Server *portier.Server
	HTTP   *httptest.Server
	// URL is the base URL of HTTP, e.g. http://127.0.0.1:40000.
	URL   string
	Store *models.Store
}

// Start starts a control plane that runs until the test ends.
func Start(t testing.TB, o Options) *ControlPlane {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := o.Store
	if store == nil {
		var err error
		if store, err = models.Open(ctx, filepath.Join(t.TempDir(), "control.db")); err != nil {
			t.Fatalf("open the control plane's store: %v", err)
		}
		t.Cleanup(func() { store.Close() })
	}
	p := o.Params
	p.Store = store
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := portier.New(p)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(srv.Close)
	if !o.NoBackground {
		srv.StartBackground(ctx)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &ControlPlane{Server: srv, HTTP: hs, URL: hs.URL, Store: store}
}

// Operator creates an operator account.
func (cp *ControlPlane) Operator(t testing.TB, name, password string) *models.User {
	t.Helper()
	u, err := cp.Store.CreateUser(context.Background(), name, password, models.RoleOperator)
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// Stream creates the stream live/name owned by owner.
func (cp *ControlPlane) Stream(t testing.TB, owner *models.User, name string) *models.Stream {
	t.Helper()
	st, err := cp.Store.CreateStream(context.Background(), models.DefaultApp, name, owner.ID)
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return st
}
