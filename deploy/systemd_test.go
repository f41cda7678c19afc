package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unitFile is a parsed systemd unit: section → key → values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot parse %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// last is the effective value of a single-valued key ("" if unset).
func (u unitFile) last(key string) string {
	v := u["Service"][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// specifiers expands the unit specifiers the units use, for one instance
// on one host.
func specifiers(s, instance, host string) string {
	return strings.NewReplacer("%i", instance, "%H", host, "%%", "%").Replace(s)
}

// The hardening every unit has, as systemd-analyze security cannot tell a
// missing line from a weaker one.
var hardening = map[string]string{
	"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
	"PrivateDevices": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "ProtectKernelTunables": "yes",
	"ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes",
	"RestrictNamespaces": "yes", "SystemCallArchitectures": "native", "UMask": "0077",
}

// unitRoles maps each unit to the command (and relay role) it must run.
var unitRoles = map[string]string{
	"portier-serve.service": "serve", "portier-origin@.service": "relay --role origin",
	"portier-edge@.service": "relay --role edge", "portier-concierge@.service": "concierge",
	"portier-hls-origin@.service": "hls-origin", "portier-cdn-edge@.service": "cdn-edge",
}

// TestSystemdUnitsStatic checks every unit's ExecStart against `portier ROLE
// -h`, its hardening, its writable paths, and that two instances of a
// template on one host get distinct node names and environment files.
func TestSystemdUnitsStatic(t *testing.T) {
	paths, _ := filepath.Glob("systemd/*.service")
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	for want := range unitRoles {
		if !slices.Contains(names, want) {
			t.Errorf("no unit %s", want)
		}
	}
	for _, p := range paths {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			u := parseUnit(t, p)
			for k, want := range hardening {
				if got, ok := u["Service"][k]; !ok || u.last(k) != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
			if u.last("DynamicUser") != "yes" && (u.last("User") == "" || u.last("User") == "root") {
				t.Errorf("want DynamicUser=yes or a dedicated User=")
			}
			if user := u.last("User"); user != "" && u.last("DynamicUser") != "yes" && !sysusers(t)[user] {
				t.Errorf("User=%s is not created by systemd/portier.sysusers.conf", user)
			}
			exec := u["Service"]["ExecStart"]
			if len(exec) != 1 {
				t.Fatalf("want one ExecStart, got %q", exec)
			}
			argv := strings.Fields(exec[0])
			if argv[0] != "/usr/local/bin/portier" {
				t.Errorf("ExecStart runs %s, want /usr/local/bin/portier", argv[0])
			}
			role := unitRoles[name]
			if !strings.HasPrefix(strings.Join(argv[1:], " "), role) {
				t.Errorf("ExecStart %q does not run portier %s", exec[0], role)
			}
			flags := flagsOf(t, argv[1])
			instances := []string{""}
			if strings.Contains(name, "@") {
				instances = []string{"1", "2"}
			}
			seen := map[string]bool{}
			for _, inst := range instances {
				got, bad := parseArgs(flags, strings.Fields(specifiers(strings.Join(argv[2:], " "), inst, "host-1")))
				for _, b := range bad {
					t.Errorf("ExecStart: %s (not in `portier %s -h`)", b, argv[1])
				}
				for _, env := range u["Service"]["Environment"] {
					for _, kv := range strings.Fields(specifiers(env, inst, "host-1")) {
						k, v, _ := strings.Cut(kv, "=")
						if f := envFlag(k); f != "" {
							if _, ok := flags[f]; !ok {
								t.Errorf("Environment %s: `portier %s -h` has no --%s", k, argv[1], f)
							} else if _, set := got[f]; !set {
								got[f] = v
							}
						}
					}
				}
				if inst == "" {
					continue
				}
				if got["name"] == "" || seen[got["name"]] {
					t.Errorf("instances 1 and 2 on one host get the same node name %q: put %%i in --name", got["name"])
				}
				seen[got["name"]] = true
				var perInstance bool
				for _, ef := range u["Service"]["EnvironmentFile"] {
					perInstance = perInstance || strings.Contains(ef, "%i")
				}
				if !perInstance {
					t.Errorf("no per-instance EnvironmentFile (with %%i) for the instance's ports")
				}
				writable := writablePaths(u, inst)
				for _, f := range []string{"data-dir", "storage", "disk-cache-dir"} {
					if v := got[f]; v != "" && !slices.ContainsFunc(writable, func(w string) bool { return v == w || strings.HasPrefix(v, w+"/") }) {
						t.Errorf("--%s %s is not under a writable path %v", f, v, writable)
					}
				}
			}
			for _, ef := range u["Service"]["EnvironmentFile"] {
				if !strings.HasPrefix(strings.TrimPrefix(ef, "-"), "/etc/portier/") {
					t.Errorf("EnvironmentFile %s is outside /etc/portier", ef)
				}
			}
			if v := u.last("Environment"); strings.Contains(v, "TOKEN") || strings.Contains(v, "DATABASE_URL") {
				t.Errorf("a secret in Environment= shows in systemctl show: use the EnvironmentFile")
			}
		})
	}
}

// writablePaths lists what ProtectSystem=strict leaves writable for an
// instance: its state, cache and ReadWritePaths directories.
func writablePaths(u unitFile, inst string) []string {
	var out []string
	for key, base := range map[string]string{"StateDirectory": "/var/lib/", "CacheDirectory": "/var/cache/"} {
		for _, v := range u["Service"][key] {
			for _, d := range strings.Fields(v) {
				out = append(out, base+specifiers(d, inst, "host-1"))
			}
		}
	}
	for _, v := range u["Service"]["ReadWritePaths"] {
		for _, d := range strings.Fields(v) {
			out = append(out, strings.TrimPrefix(d, "-"))
		}
	}
	return out
}

// TestSystemdAnalyze runs systemd-analyze verify (any warning fails) and
// security (exposure at most 2.0, "OK") on every unit, with ExecStart
// pointing at a real portier binary, as verify requires.
func TestSystemdAnalyze(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("systemd-analyze is required under CI=true (Debian package systemd): %v", err)
		}
		t.Skip("systemd-analyze not found (Debian package systemd); CI runs this test")
	}
	bin := portierPath(t)
	dir := t.TempDir()
	paths, _ := filepath.Glob("systemd/*.service")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/portier", bin))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		unit := strings.Replace(filepath.Base(p), "@.", "@1.", 1)
		t.Run(unit, func(t *testing.T) {
			out, err := exec.Command(tool, "verify", "--man=no", filepath.Join(dir, unit)).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			out, err = exec.Command(tool, "security", "--offline=true", "--threshold=20", "--no-pager",
				filepath.Join(dir, unit)).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
			}
		})
	}
}

// sysusers returns the users systemd/portier.sysusers.conf creates.
func sysusers(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("systemd/portier.sysusers.conf")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "u" {
			users[f[1]] = true
		}
	}
	return users
}
