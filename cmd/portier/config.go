package main

import (
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseFlags parses args into fs and then fills every flag that was not given
// on the command line from the environment (PORTIER_<FLAG>, dashes become
// underscores) and then from the YAML file named by --config, in that order of
// precedence. Unknown YAML keys are an error so that typos do not pass silently.
func parseFlags(fs *flag.FlagSet, args []string) error {
	configPath := fs.String("config", os.Getenv("PORTIER_CONFIG"), "optional YAML file with options (keys are flag names)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var file map[string]any
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", *configPath, err)
		}
		for _, k := range slices.Sorted(maps.Keys(file)) {
			if err := checkFileKey(fs, k, file[k]); err != nil {
				return fmt.Errorf("config file %s: %w", *configPath, err)
			}
		}
	}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := "PORTIER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", env, v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(fmt.Sprint(v)); err != nil {
				errs = append(errs, fmt.Sprintf("config %s: %v", f.Name, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid options: %s", strings.Join(errs, "; "))
	}
	return nil
}

// checkFileKey checks one key of a --config file: a flag name other than
// config, with one scalar value. A null value (`key:` with nothing after it)
// is refused rather than guessed at: it could mean empty or default.
func checkFileKey(fs *flag.FlagSet, key string, v any) error {
	if fs.Lookup(key) == nil {
		return fmt.Errorf("unknown option %q (options are the flag names of `portier %s -h`)", key, fs.Name())
	}
	if key == "config" {
		return fmt.Errorf("option \"config\" cannot be set inside a config file: give --config or PORTIER_CONFIG")
	}
	switch v.(type) {
	case nil:
		return fmt.Errorf("option %q has no value: write %s: \"\" for an empty value, or remove the line for the default", key, key)
	case map[string]any, []any:
		return fmt.Errorf("option %q: want a single value; lists are one comma-separated string, e.g. origins: \"origin-1:1935,origin-2:1935\"", key)
	}
	return nil
}

// defaultNodeName is the host name: the default --name of `portier run`,
// which names its nodes NAME-origin and NAME-concierge.
func defaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	return h
}

// roleNodeName is the default --name of a node of role listening on
// listenAddr: HOST-ROLE, plus -PORT when the port is not the role's
// default. Node names must be unique among live nodes (the control plane
// refuses a second one); this default is unique on one host (an origin and
// an edge differ by role, two of one role by port) and stable across
// restarts of the same process.
func roleNodeName(role, listenAddr, defaultPort string) string {
	name := defaultNodeName() + "-" + role
	if _, port, err := net.SplitHostPort(listenAddr); err == nil && port != "" && port != defaultPort {
		name += "-" + port
	}
	return name
}

// nodeNameRE is what the control plane accepts as a node name.
var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// checkNodeName checks a --name.
func checkNodeName(name, example string) error {
	if !nodeNameRE.MatchString(name) {
		return badValue("name", name, "want 1-128 letters, digits and _ . : - starting with a letter or digit, unique among live nodes, e.g. "+example)
	}
	return nil
}
