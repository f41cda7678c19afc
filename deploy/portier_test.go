package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The portier binary the tests check the deployment files against: bin/portier
// on PATH (`make test` puts it there), else one built once into a temporary
// directory.
var portierBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
	// built is the temporary directory of a binary built here.
	built string
}

// TestMain removes the portier binary the tests built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if portierBin.built != "" {
		os.RemoveAll(portierBin.built)
	}
	os.Exit(code)
}

// portierPath returns the path of a portier binary, building it if none is
// on PATH.
func portierPath(t *testing.T) string {
	t.Helper()
	portierBin.once.Do(func() {
		if p, err := exec.LookPath("portier"); err == nil {
			portierBin.path = p
			return
		}
		dir, err := os.MkdirTemp("", "portier-deploy-test-")
		if err != nil {
			portierBin.err = err
			return
		}
		portierBin.built = dir
		p := filepath.Join(dir, "portier")
		cmd := exec.Command("go", "build", "-o", p, "github.com/portier/portier/cmd/portier")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		portierBin.out, portierBin.err = cmd.CombinedOutput()
		portierBin.path = p
	})
	if portierBin.err != nil {
		t.Fatalf("build portier: %v\n%s", portierBin.err, portierBin.out)
	}
	return portierBin.path
}

// roleFlags is what `portier ROLE -h` lists: flag name → whether it is a
// boolean (takes no separate value).
type roleFlags map[string]bool

var (
	flagsMu    sync.Mutex
	flagsCache = map[string]roleFlags{}
	// "  -name type" or "  -name" (a boolean) at the start of a line.
	helpFlagLine = regexp.MustCompile(`^  -([a-z0-9-]+)(?: (\S+))?$`)
)

// flagsOf returns the flags of `portier role -h`.
func flagsOf(t *testing.T, role string) roleFlags {
	t.Helper()
	flagsMu.Lock()
	defer flagsMu.Unlock()
	if f, ok := flagsCache[role]; ok {
		return f
	}
	// -h exits with status 0 or 2 depending on the flag package's mode:
	// the listing is what counts.
	out, _ := exec.Command(portierPath(t), role, "-h").CombinedOutput()
	f := roleFlags{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := helpFlagLine.FindStringSubmatch(sc.Text()); m != nil {
			f[m[1]] = m[2] == ""
		}
	}
	if len(f) == 0 || !strings.Contains(string(out), "Usage of "+role) {
		t.Fatalf("portier %s -h lists no flags:\n%s", role, out)
	}
	flagsCache[role] = f
	return f
}

// envFlag maps PORTIER_<FLAG> to the flag name, or "" for another variable.
func envFlag(env string) string {
	rest, ok := strings.CutPrefix(env, "PORTIER_")
	if !ok {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(rest), "_", "-")
}

// parseArgs splits a command line after the role into flag → value, with an
// error text for each argument that is not a known flag of the role.
func parseArgs(flags roleFlags, args []string) (map[string]string, []string) {
	got := map[string]string{}
	var bad []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			bad = append(bad, "positional argument "+a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		isBool, known := flags[name]
		switch {
		case !known:
			bad = append(bad, "unknown flag "+a)
			continue
		case !hasVal && isBool:
			val = "true"
		case !hasVal:
			if i+1 >= len(args) {
				bad = append(bad, "flag "+a+" without a value")
				continue
			}
			i++
			val = args[i]
		}
		if _, dup := got[name]; dup {
			bad = append(bad, "flag "+a+" given twice")
		}
		got[name] = val
	}
	return got, bad
}
