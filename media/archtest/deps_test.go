package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/portier/portier"

type pkg struct {
	ImportPath string
	Standard   bool
	Deps       []string
}

// list runs `go list -e -json` on patterns from the module root.
func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	args := append([]string{"list", "-e", "-json"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", patterns, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list %v found no packages", patterns)
	}
	return pkgs
}

// The hub knows no protocol: media/stream depends on the standard library
// only (no other media package, no protocol library such as go-rtmp,
// gortsplib, mediacommon or pion).
func TestStreamDependsOnStandardLibraryOnly(t *testing.T) {
	pkgs := list(t, "./media/stream")
	std := map[string]bool{}
	for _, p := range list(t, "std") {
		std[p.ImportPath] = true
	}
	for _, p := range pkgs {
		for _, d := range p.Deps {
			if !std[d] {
				t.Errorf("%s depends on %s: the hub must stay protocol-agnostic (standard library only)", p.ImportPath, d)
			}
		}
	}
}

// Nothing under media/ reaches into the control plane.
func TestMediaDoesNotImportControlPlane(t *testing.T) {
	forbidden := []string{module + "/portier", module + "/web", module + "/models"}
	for _, p := range list(t, "./media/...") {
		for _, d := range p.Deps { // Deps includes the direct imports
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s: media/ must not import the control plane", p.ImportPath, d)
				}
			}
		}
	}
}

// forbid fails for every package matched by patterns that depends (directly
// or not) on a package equal to, or under, one of the forbidden paths, except
// the allowed ones.
func forbid(t *testing.T, why string, patterns []string, forbidden []string, allowed ...string) {
	t.Helper()
	for _, p := range list(t, patterns...) {
	deps:
		for _, d := range p.Deps {
			for _, a := range allowed {
				if d == a {
					continue deps
				}
			}
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s: %s", p.ImportPath, d, why)
				}
			}
		}
	}
}

// Pure protocol code is fuzzed and reused; it counts nothing for a
// monitoring system (the relay wires metrics, media/relay/rtpmetrics.go).
func TestProtocolPackagesHaveNoMetrics(t *testing.T) {
	forbid(t, "protocol packages stay free of Prometheus (wire metrics in media/relay)",
		[]string{"./media/rtp", "./media/rtmp/...", "./media/flv", "./media/stream"},
		[]string{"github.com/prometheus"})
}

// Templates render view models; database records never reach them.
func TestViewsDoNotImportModels(t *testing.T) {
	forbid(t, "web/views renders view models (web/views/viewmodels.go), never gorm records",
		[]string{"./web/..."}, []string{module + "/models", module + "/portier"})
}

// The task compiler is a pure function of config and stream state: it
// knows nothing of the media plane, the database or HTTP.
func TestCompileIsPure(t *testing.T) {
	forbid(t, "portier/compile is pure (no media plane, no store, no HTTP framework)",
		[]string{"./portier/compile"},
		[]string{module + "/media", module + "/models", "github.com/gin-gonic/gin", "gorm.io"})
}

// The wire packages are the contracts between processes: both sides import
// them, so they import nothing of either side (standard library only).
func TestWirePackagesDependOnStandardLibraryOnly(t *testing.T) {
	std := map[string]bool{}
	for _, p := range list(t, "std") {
		std[p.ImportPath] = true
	}
	for _, p := range list(t, "./internal/nodewire", "./concierge/wire") {
		for _, d := range p.Deps {
			if !std[d] {
				t.Errorf("%s depends on %s: a wire package holds messages only (standard library)", p.ImportPath, d)
			}
		}
	}
}

// The control plane's imports go one way: the HTTP surfaces (package
// portier: api, ui, hooks, node API) call the write paths (portier/core),
// which call the store (models); neither core nor models reaches back up,
// and the write paths know no HTTP.
func TestControlPlaneImportsGoOneWay(t *testing.T) {
	forbid(t, "portier/core holds the write paths: it calls models, never the HTTP layer above it",
		[]string{"./portier/core"},
		[]string{module + "/portier", module + "/web", module + "/media", "github.com/gin-gonic/gin"},
		module+"/portier/compile", module+"/portier/recordings")
	forbid(t, "portier/recordings is the recorded files (list, path, delete): it knows nothing else of the system",
		[]string{"./portier/recordings"},
		[]string{module, "github.com/gin-gonic/gin", "gorm.io"})
	forbid(t, "models is the store: it never calls the control plane above it (compile's name rule aside)",
		[]string{"./models/..."},
		[]string{module + "/portier", module + "/web", module + "/media", module + "/concierge"},
		module+"/portier/compile")
	forbid(t, "the control plane talks to the media plane over internal/nodewire only (media/httpserve aside, a shared HTTP server helper)",
		[]string{"./portier/..."},
		[]string{module + "/media"},
		module+"/media/httpserve")
	forbid(t, "the concierge talks to the control plane over concierge/wire only",
		[]string{"./concierge/..."},
		[]string{module + "/portier", module + "/models", module + "/web"})
}

// The control plane's packages are layered: the scheduler at the bottom
// (store and wire types only), then live state, then the surfaces; nothing
// imports the composition root (package portier) but cmd/ and the tests'
// harness.
func TestControlPlaneLayers(t *testing.T) {
	forbid(t, "portier/sched is the bottom of the control plane: it imports the store and wire types, nothing above it",
		[]string{"./portier/sched"},
		[]string{module + "/portier", module + "/web", "github.com/gin-gonic/gin"},
		module+"/portier/compile")
	forbid(t, "portier/live keeps live state: it calls the scheduler through its Scheduler interface and knows no HTTP surface",
		[]string{"./portier/live"},
		[]string{module + "/portier", module + "/web", "github.com/gin-gonic/gin"},
		module+"/portier/compile", module+"/portier/webhook")
	forbid(t, "portier/nodeapi (node API, hook dialects) decides through portier/live and reaches the scheduler through an interface; it knows neither the REST API nor the UI",
		[]string{"./portier/nodeapi"},
		[]string{module + "/portier", module + "/web"},
		module+"/portier/live", module+"/portier/compile", module+"/portier/webhook", module+"/portier/recordings")
	forbid(t, "the pieces the REST API and the UI share (auth, httperr, paging, streamurl) know neither surface nor live state",
		[]string{"./portier/auth", "./portier/httperr", "./portier/paging", "./portier/streamurl"},
		[]string{module + "/portier", module + "/web", module + "/concierge"},
		module+"/portier/core", module+"/portier/compile", module+"/portier/httperr", module+"/portier/recordings")
	forbid(t, "portier/api (REST) reaches live state through its Live interface and shares only auth, httperr, paging and streamurl with the UI; it never imports the UI, the node API or the scheduler",
		[]string{"./portier/api"},
		[]string{module + "/portier", module + "/web", module + "/concierge"},
		module+"/portier/core", module+"/portier/compile", module+"/portier/auth", module+"/portier/httperr",
		module+"/portier/paging", module+"/portier/streamurl", module+"/portier/recordings")
	forbid(t, "portier/ui (web UI) reaches live state through its Live interface (and live's CDN load arithmetic) and shares only auth, httperr, paging and streamurl with the REST API; it never imports the REST API, the node API or the scheduler",
		[]string{"./portier/ui"},
		[]string{module + "/portier", module + "/concierge"},
		module+"/portier/core", module+"/portier/compile", module+"/portier/auth", module+"/portier/httperr",
		module+"/portier/paging", module+"/portier/streamurl", module+"/portier/hlsrewrite", module+"/portier/live",
		module+"/portier/history", module+"/portier/webhook", // webhook: through live
		module+"/portier/recordings")
	// Nothing below the composition root imports it (portiertest, the
	// test harness, starts a whole control plane: it is above the root).
	for _, p := range list(t, "./portier/...") {
		if p.ImportPath == module+"/portier" || p.ImportPath == module+"/portier/portiertest" {
			continue
		}
		for _, d := range p.Deps {
			if d == module+"/portier" {
				t.Errorf("%s depends on %s: only cmd/ and the test harness import the composition root", p.ImportPath, d)
			}
		}
	}
}

// Test helpers stay out of the binaries: modelstest lowers bcrypt's cost
// for password hashes when it is imported (models.PasswordCost), so a
// program that imported it would store weak hashes.
func TestBinariesImportNoTestHelpers(t *testing.T) {
	for _, p := range list(t, "./cmd/...") {
		for _, d := range append(p.Deps, p.ImportPath) {
			if d == module+"/models/modelstest" || d == module+"/internal/testutil" || d == module+"/portier/portiertest" {
				t.Errorf("%s depends on the test helper %s", p.ImportPath, d)
			}
		}
	}
}
