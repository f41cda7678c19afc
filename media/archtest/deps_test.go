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
