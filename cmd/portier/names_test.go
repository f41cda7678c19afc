package main

import "testing"

// Default node names are unique on one host (an origin and an edge differ by
// role, two of one role by port) and stable across restarts.
func TestDefaultNodeNames(t *testing.T) {
	clearPortierEnv(t)
	host := defaultNodeName()
	for _, tc := range []struct {
		command string
		args    []string
		want    string
	}{
		{"relay", []string{"--role", "origin", "--control", "http://c:8080"}, host + "-origin"},
		{"relay", []string{"--role", "edge", "--control", "http://c:8080"}, host + "-edge"},
		{"relay", []string{"--role", "edge", "--control", "http://c:8080", "--rtmp-addr", "127.0.0.1:1936"}, host + "-edge-1936"},
		{"relay", []string{"--role", "edge", "--control", "http://c:8080", "--name", "edge-7"}, "edge-7"},
		{"concierge", []string{"--control", "http://c:8080"}, host + "-concierge"},
		{"concierge", []string{"--control", "http://c:8080", "--http-addr", ":8092"}, host + "-concierge-8092"},
		{"concierge", []string{"--control", "http://c:8080", "--http-addr", ""}, host + "-concierge"},
		{"hls-origin", []string{"--control", "http://c:8080", "--cluster-token", "t", "--storage", "/x"}, host + "-hls-origin"},
		{"hls-origin", []string{"--control", "http://c:8080", "--cluster-token", "t", "--storage", "/x", "--http-addr", ":8091"}, host + "-hls-origin-8091"},
		{"cdn-edge", []string{"--control", "http://c:8080", "--cluster-token", "t", "--origin", "http://o:8090"}, host + "-cdn-edge"},
		{"cdn-edge", []string{"--control", "http://c:8080", "--cluster-token", "t", "--origin", "http://o:8090", "--http-addr", ":8096"}, host + "-cdn-edge-8096"},
	} {
		c, err := loaders[tc.command](tc.args)
		if err != nil {
			t.Errorf("portier %s %q: %v", tc.command, tc.args, err)
			continue
		}
		var got string
		switch c := c.(type) {
		case *relayConfig:
			got = c.Name
		case *conciergeConfig:
			got = c.Name
		case *hlsOriginConfig:
			got = c.Name
		case *cdnEdgeConfig:
			got = c.Name
		}
		if got != tc.want {
			t.Errorf("portier %s %q: name %q, want %q", tc.command, tc.args, got, tc.want)
		}
	}
	// Stable: the same options give the same name again.
	a, _ := loaders["relay"]([]string{"--role", "origin", "--control", "http://c:8080"})
	b, _ := loaders["relay"]([]string{"--role", "origin", "--control", "http://c:8080"})
	if a.(*relayConfig).Name != b.(*relayConfig).Name {
		t.Error("default name changes between loads")
	}
}
