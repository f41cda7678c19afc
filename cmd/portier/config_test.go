package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleDir holds the shipped sample configs (tests run in cmd/portier).
const sampleDir = "../../deploy/config"

// clearPortierEnv unsets every PORTIER_* variable for the test, so that the
// environment of whoever runs the tests cannot change what a config loads.
func clearPortierEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PORTIER_") {
			t.Setenv(k, "") // restores the old value after the test
			os.Unsetenv(k)
		}
	}
}

// loaders are the commands' own config loaders, by command name.
var loaders = map[string]func(args []string) (roleConfig, error){
	"run":       func(a []string) (roleConfig, error) { return loadConfig[runConfig]("run", a) },
	"serve":     func(a []string) (roleConfig, error) { return loadConfig[serveConfig]("serve", a) },
	"relay":     func(a []string) (roleConfig, error) { return loadConfig[relayConfig]("relay", a) },
	"concierge": func(a []string) (roleConfig, error) { return loadConfig[conciergeConfig]("concierge", a) },
	"hls-origin": func(a []string) (roleConfig, error) {
		return loadConfig[hlsOriginConfig]("hls-origin", a)
	},
	"cdn-edge": func(a []string) (roleConfig, error) {
		return loadConfig[cdnEdgeConfig]("cdn-edge", a)
	},
}

// Every shipped sample config loads and validates through the loader its
// command uses, and mentions every option of its command (as a key, or as a
// commented-out "# key:") so that a new flag cannot be forgotten there.
func TestSampleConfigsLoad(t *testing.T) {
	clearPortierEnv(t)
	for _, tc := range []struct {
		file, command string
		check         func(c roleConfig) bool // proves the file was read
	}{
		{"run.yaml", "run", func(c roleConfig) bool { return c.(*runConfig).Name == "studio-1" }},
		{"serve.yaml", "serve", func(c roleConfig) bool {
			s := c.(*serveConfig)
			return s.Replicas == 2 && strings.HasPrefix(s.DatabaseURL, "postgres://") && s.TrustedProxies == "10.0.0.0/8"
		}},
		{"relay-origin.yaml", "relay", func(c roleConfig) bool { return c.(*relayConfig).Role == "origin" }},
		{"relay-edge.yaml", "relay", func(c roleConfig) bool {
			r := c.(*relayConfig)
			return r.Role == "edge" && len(r.staticOrigins()) == 2
		}},
		{"concierge.yaml", "concierge", func(c roleConfig) bool { return c.(*conciergeConfig).Capacity == 8 }},
		{"hls-origin.yaml", "hls-origin", func(c roleConfig) bool {
			h := c.(*hlsOriginConfig)
			return h.Name == "hls-origin-1" && h.Retention == 10*time.Minute && h.Storage == "/var/lib/portier/hls"
		}},
		{"cdn-edge.yaml", "cdn-edge", func(c roleConfig) bool {
			e := c.(*cdnEdgeConfig)
			return e.Name == "cdn-edge-1" && len(e.origins()) == 2 && e.CacheBytes == 512<<20
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(sampleDir, tc.file)
			c, err := loaders[tc.command]([]string{"--config", path})
			if err != nil {
				t.Fatalf("portier %s --config %s: %v", tc.command, path, err)
			}
			if !tc.check(c) {
				t.Errorf("%s: values not read from the file: %+v", tc.file, c)
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet(tc.command, flag.ContinueOnError)
			c.flags(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(f.Name) + `:`).Match(text) {
					t.Errorf("%s does not mention option %s (add it, or a commented-out # %s: line)", tc.file, f.Name, f.Name)
				}
			})
		})
	}
}

// optionsIn lists the Option of every optionError in err's tree.
func optionsIn(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var oe *optionError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		default:
			if errors.As(err, &oe) {
				out = append(out, oe.Option)
			}
		}
	}
	walk(err)
	return out
}

// Each bad value is refused with an error that names its option (and only
// that option, since the other options are valid).
func TestConfigValidationErrors(t *testing.T) {
	clearPortierEnv(t)
	base := map[string][]string{
		"run":       nil,
		"serve":     {"--database-url", "postgres://portier:s3cret@db/portier", "--cluster-token", "t"},
		"relay":     {"--role", "origin", "--control", "http://control:8080"},
		"concierge": {"--control", "http://control:8080"},
	}
	for _, tc := range []struct {
		command string
		args    []string
		option  string
	}{
		{"run", []string{"--data-dir", ""}, "data-dir"},
		{"run", []string{"--http-addr", "foo"}, "http-addr"},
		{"run", []string{"--player-write-frames", "9"}, "player-write-frames"},
		{"run", []string{"--http-addr", ":99999"}, "http-addr"},
		{"run", []string{"--rtmp-addr", "1935"}, "rtmp-addr"},
		{"run", []string{"--rtmp-addr", ":0"}, "rtmp-addr"},
		{"run", []string{"--rtsp-addr", "8554"}, "rtsp-addr"},
		{"run", []string{"--rtsp-udp-read-buffer", "100"}, "rtsp-udp-read-buffer"},
		{"run", []string{"--name", ""}, "name"},
		{"run", []string{"--rtsp-pull", "live/cam1?key=k=rtsp:///s"}, "rtsp-pull"},
		{"run", []string{"--public-host", "http://stream.example.com"}, "public-host"},
		{"run", []string{"--public-host", "stream.example.com:8080"}, "public-host"},
		{"run", []string{"--public-url", "portier.example.com"}, "public-url"},
		{"run", []string{"--capacity", "-1"}, "capacity"},
		{"run", []string{"--log-level", "loud"}, "log-level"},
		{"run", []string{"--hook-allow", "localhost"}, "hook-allow"},
		{"run", []string{"--hook-allow", "127.0.0.1/33"}, "hook-allow"},

		{"serve", []string{"--database-url", ""}, "database-url"},
		{"serve", []string{"--database-url", "postgres://portier:p%zz@db/portier"}, "database-url"},
		{"serve", []string{"--log-level", "loud"}, "log-level"},
		{"serve", []string{"--cluster-token", ""}, "cluster-token"},
		{"serve", []string{"--replicas", "0"}, "replicas"},
		{"serve", []string{"--database-url", "/var/lib/portier/portier.db", "--replicas", "2"}, "replicas"},
		{"serve", []string{"--http-addr", "localhost"}, "http-addr"},
		{"serve", []string{"--public-host", "stream.example.com/"}, "public-host"},
		{"serve", []string{"--public-url", "ftp://portier.example.com"}, "public-url"},
		{"serve", []string{"--public-url", "https://portier.example.com/?a=b"}, "public-url"},
		{"serve", []string{"--rtmp-port", "0"}, "rtmp-port"},
		{"serve", []string{"--rtmp-port", "70000"}, "rtmp-port"},
		{"serve", []string{"--play-http-base", "edge.example:8081"}, "play-http-base"},
		{"serve", []string{"--hook-allow", "srs"}, "hook-allow"},
		{"serve", []string{"--hook-allow", "srs=10.0.0.0/33"}, "hook-allow"},
		{"serve", []string{"--hook-origin-ttl", "mediamtx=0s"}, "hook-origin-ttl"},
		{"serve", []string{"--trusted-proxies", "10.0.0.0/33"}, "trusted-proxies"},
		{"serve", []string{"--trusted-proxies", "proxy.example"}, "trusted-proxies"},
		{"serve", []string{"--trusted-proxies", "10.0.0.1/8"}, "trusted-proxies"},
		{"serve", []string{"--task-url-allow", "metadata.google.internal"}, "task-url-allow"},
		{"serve", []string{"--task-url-allow", "169.254.0.0/99"}, "task-url-allow"},
		{"serve", []string{"--task-url-deny", "10.0.0.0/8;192.168.0.0/16"}, "task-url-deny"},
		{"run", []string{"--trusted-proxies", "x"}, "trusted-proxies"},
		{"run", []string{"--task-url-deny", "fe80::/129"}, "task-url-deny"},
		{"serve", []string{"--relay-rtmp-url", "http://relay:1935"}, "relay-rtmp-url"},
		{"serve", []string{"--relay-rtmp-url", ""}, "relay-rtmp-url"},
		{"serve", []string{"--record-dir", "recordings"}, "record-dir"},
		{"serve", []string{"--hls-origin-url", "ftp://hls"}, "hls-origin-url"},

		{"relay", []string{"--role", ""}, "role"},
		{"relay", []string{"--role", "bogus"}, "role"},
		{"relay", []string{"--control", ""}, "control"},
		{"relay", []string{"--role", "edge", "--control", ""}, "control"},
		{"relay", []string{"--control", "control:8080"}, "control"},
		{"relay", []string{"--control", "http://control-0:8080,control-1:8080"}, "control"},
		{"relay", []string{"--control", " , "}, "control"},
		{"relay", []string{"--origins", "origin-1:1935,nohost"}, "origins"},
		{"relay", []string{"--name", "no spaces"}, "name"},
		{"relay", []string{"--rtmp-addr", ""}, "rtmp-addr"},
		{"relay", []string{"--rtsp-addr", "x"}, "rtsp-addr"},
		{"relay", []string{"--rtsp-udp-addr", ":8001"}, "rtsp-udp-addr"},
		{"relay", []string{"--rtsp-udp-read-buffer", "-2"}, "rtsp-udp-read-buffer"},
		{"relay", []string{"--http-addr", "x"}, "http-addr"},
		{"relay", []string{"--pprof-addr", ":6060"}, "pprof-addr"},
		{"relay", []string{"--player-write-frames", "0"}, "player-write-frames"},
		{"relay", []string{"--player-write-frames", "5"}, "player-write-frames"},
		{"relay", []string{"--pprof-addr", "0.0.0.0:6060"}, "pprof-addr"},
		{"relay", []string{"--rtsp-pull", "cam1?key=k=rtsp://10.0.0.7/s"}, "rtsp-pull"},
		{"relay", []string{"--rtsp-pull", "live/cam1?key=k=http://10.0.0.7/s"}, "rtsp-pull"},
		{"relay", []string{"--rtsp-pull", "live/cam1"}, "rtsp-pull"},
		{"relay", []string{"--rtsp-pull", "live/cam1=rtsp://10.0.0.7/s"}, "rtsp-pull"},
		{"relay", []string{"--rtsp-pull", "live/cam1?key=k=rtsp:///s"}, "rtsp-pull"},
		{"relay", []string{"--role", "edge", "--rtsp-pull", "live/cam1?key=k=rtsp://10.0.0.7/s"}, "rtsp-pull"},
		{"relay", []string{"--rtsp-pull-transport", "multicast"}, "rtsp-pull-transport"},
		{"relay", []string{"--advertise-addr", ":1935"}, "advertise-addr"},
		{"relay", []string{"--advertise-http-addr", "origin-1"}, "advertise-http-addr"},
		{"relay", []string{"--no-origin-timeout", "0s"}, "no-origin-timeout"},
		{"relay", []string{"--idle-timeout", "-1s"}, "idle-timeout"},
		{"relay", []string{"--capacity", "2000000"}, "capacity"},
		{"relay", []string{"--log-level", "x"}, "log-level"},

		{"concierge", []string{"--control", ""}, "control"},
		{"concierge", []string{"--control", "ftp://control"}, "control"},
		{"concierge", []string{"--control", "http://control-0:8080,ftp://control-1"}, "control"},
		{"concierge", []string{"--supervisor-url", "ftp://sv", "--supervisor-include-dir", "/etc/sv"}, "supervisor-url"},
		{"concierge", []string{"--supervisor-url", "unix:///run/supervisor.sock"}, "supervisor-include-dir"},
		{"concierge", []string{"--name", "-dash-first"}, "name"},
		{"concierge", []string{"--capacity", "-1"}, "capacity"},
		{"concierge", []string{"--labels", "=ssd"}, "labels"},
		{"concierge", []string{"--relay-rtmp", "rtmp://edge-1"}, "relay-rtmp"},
		{"concierge", []string{"--http-addr", "x"}, "http-addr"},
		{"concierge", []string{"--drain-timeout", "0s"}, "drain-timeout"},
		{"concierge", []string{"--log-level", "x"}, "log-level"},
	} {
		args := append(append([]string{}, base[tc.command]...), tc.args...)
		_, err := loaders[tc.command](args)
		if err == nil {
			t.Errorf("portier %s %q: accepted", tc.command, args)
			continue
		}
		if got := optionsIn(err); len(got) != 1 || got[0] != tc.option {
			t.Errorf("portier %s %q: error names options %v, want [%s]: %v", tc.command, args, got, tc.option, err)
		}
		if !strings.Contains(err.Error(), "--"+tc.option) {
			t.Errorf("portier %s %q: %q does not mention --%s", tc.command, args, err, tc.option)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("portier %s %q: error shows the database password: %v", tc.command, args, err)
		}
	}

	// The base configurations are valid, or the table above proves nothing.
	for command, args := range base {
		if _, err := loaders[command](args); err != nil {
			t.Errorf("portier %s %q: %v", command, args, err)
		}
	}
}

// A start lists every bad option at once, with how to fix each.
func TestConfigReportsEveryProblem(t *testing.T) {
	clearPortierEnv(t)
	_, err := loadConfig[serveConfig]("serve", []string{"--http-addr", "foo"})
	want := []string{
		`--database-url is required: postgres://`,
		`--cluster-token is required`,
		`--http-addr "foo": want [host]:port to listen on, e.g. :8080`,
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %q", err, w)
		}
	}
}

// Secrets in URLs never appear in validation errors.
func TestConfigErrorsHideSecrets(t *testing.T) {
	clearPortierEnv(t)
	_, err := loadConfig[relayConfig]("relay", []string{"--role", "origin", "--control", "ftp://admin:hunter2@control:8080/?token=abc"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "abc") {
		t.Errorf("error shows a secret: %v", err)
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portier.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A flag beats PORTIER_<FLAG>, which beats the --config file, which beats
// the default; PORTIER_CONFIG names the file when --config is not given.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "role: edge\norigins: \"origin-1:1935\"\nidle-timeout: \"7s\"\nhttp-addr: \":1001\"\n")
	for _, tc := range []struct {
		name      string
		env, flag string
		want      string
	}{
		{"default", "", "", ":8081"},
		{"file", "", "", ":1001"},
		{"env over file", ":1002", "", ":1002"},
		{"flag over env and file", ":1002", ":1003", ":1003"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearPortierEnv(t)
			args := []string{"--role", "edge", "--origins", "origin-1:1935"}
			if tc.name != "default" {
				args = append(args, "--config", file)
			}
			if tc.env != "" {
				t.Setenv("PORTIER_HTTP_ADDR", tc.env)
			}
			if tc.flag != "" {
				args = append(args, "--http-addr", tc.flag)
			}
			c, err := loadConfig[relayConfig]("relay", args)
			if err != nil {
				t.Fatal(err)
			}
			if c.HTTPAddr != tc.want {
				t.Errorf("--http-addr = %q, want %q", c.HTTPAddr, tc.want)
			}
		})
	}
	t.Run("PORTIER_CONFIG", func(t *testing.T) {
		clearPortierEnv(t)
		t.Setenv("PORTIER_CONFIG", file)
		c, err := loadConfig[relayConfig]("relay", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Role != "edge" || c.IdleTimeout != 7*time.Second || c.HTTPAddr != ":1001" {
			t.Errorf("PORTIER_CONFIG file not read: %+v", c)
		}
	})
}

// A --config file is refused, naming the file and the key, when a key is not
// an option, has no value, or holds a list or map.
func TestConfigFileRefusals(t *testing.T) {
	clearPortierEnv(t)
	for _, tc := range []struct{ yaml, want string }{
		{"role: origin\ncontrol: \"http://control:8080\"\nhttp-adr: \":8081\"\n", `unknown option "http-adr"`},
		{"role: origin\ncontrol: \"http://control:8080\"\nconfig: other.yaml\n", `option "config" cannot be set inside a config file`},
		{"role: origin\ncontrol: \"http://control:8080\"\nadvertise-addr:\n", `option "advertise-addr" has no value`},
		{"role: edge\norigins:\n  - origin-1:1935\n  - origin-2:1935\n", `option "origins": want a single value`},
		{"role: origin\ncontrol: \"http://control:8080\"\nidle-timeout: 5\n", `config idle-timeout`},
	} {
		path := writeFile(t, tc.yaml)
		_, err := loadConfig[relayConfig]("relay", []string{"--config", path})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config file %q: error %v, want one saying %q", tc.yaml, err, tc.want)
		}
	}
}

// -h still ends with flag.ErrHelp, which main turns into exit status 0.
func TestConfigHelp(t *testing.T) {
	clearPortierEnv(t)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	stderr := os.Stderr
	os.Stderr = devNull // the usage text is not the test's output
	defer func() { os.Stderr = stderr }()
	for command, load := range loaders {
		if _, err := load([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("portier %s -h: %v, want flag.ErrHelp", command, err)
		}
	}
}

// --control takes several control-plane replicas, separated by commas, on
// every role that has it.
func TestControlAcceptsReplicas(t *testing.T) {
	clearPortierEnv(t)
	const list = "http://control-0:8080, http://control-1:8080"
	if c, err := loadConfig[relayConfig]("relay", []string{"--role", "origin", "--control", list}); err != nil || c.Control != list {
		t.Fatalf("relay --control %q: %+v %v", list, c.Control, err)
	}
	if c, err := loadConfig[conciergeConfig]("concierge", []string{"--control", list}); err != nil || c.Control != list {
		t.Fatalf("concierge --control %q: %+v %v", list, c.Control, err)
	}
}
