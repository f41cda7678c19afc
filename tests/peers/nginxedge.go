package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// NginxEdgeOpts configures NginxCDNEdge.
type NginxEdgeOpts struct {
	Origin       string // host:port of the HLS origin
	ClusterToken string
	PlaySecret   string // hlssign.Secret(ClusterToken)
	// Workers > 0 runs a master and that many worker processes (as in
	// production); 0: one process (master_process off).
	Workers int
}

// NginxEdge is a running nginx with deploy/nginx/cdn-edge.conf.
type NginxEdge struct {
	Proc     *Proc
	Dir      string
	HTTPAddr string
}

// NginxCDNEdgeConf is the path of deploy/nginx/cdn-edge.conf in this
// working tree.
func NginxCDNEdgeConf() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nginx", "cdn-edge.conf")
}

// NginxCDNEdge starts nginx with the shipped edge config (placeholders
// filled) on a free 127.0.0.1 port, its cache and logs in t.TempDir().
func NginxCDNEdge(t testing.TB, o NginxEdgeOpts) *NginxEdge {
	t.Helper()
	bin := RequireTool(t, "nginx")
	tmpl, err := os.ReadFile(NginxCDNEdgeConf())
	if err != nil {
		t.Fatalf("read edge config: %v", err)
	}
	var lastErr error
	for range 3 {
		dir := t.TempDir()
		n := &NginxEdge{Dir: dir, HTTPAddr: FreeAddr(t)}
		for _, d := range []string{"cache", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		edge := strings.NewReplacer("@LISTEN@", n.HTTPAddr, "@ORIGIN@", o.Origin, "@CACHE_DIR@", filepath.Join(dir, "cache"),
			"@PLAY_SECRET@", o.PlaySecret, "@CLUSTER_TOKEN@", o.ClusterToken).Replace(string(tmpl))
		if err := os.WriteFile(filepath.Join(dir, "cdn-edge.conf"), []byte(edge), 0o600); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("daemon off;\n")
		if o.Workers > 0 {
			fmt.Fprintf(&b, "master_process on;\nworker_processes %d;\n", o.Workers)
			if os.Geteuid() == 0 {
				b.WriteString("user root root;\n")
			}
		} else {
			b.WriteString("master_process off;\n")
		}
		fmt.Fprintf(&b, "pid %s;\nerror_log %s warn;\nworker_rlimit_nofile 16384;\nevents {\n    worker_connections 8192;\n}\n",
			filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
		b.WriteString("http {\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n    keepalive_requests 100000;\n")
		for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&b, "    %s_temp_path %s;\n", tmp, filepath.Join(dir, "tmp", tmp))
		}
		fmt.Fprintf(&b, "    include %s;\n}\n", filepath.Join(dir, "cdn-edge.conf"))
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		cmd.Dir = dir
		p, err := startProc(t, "nginx-edge", cmd, false)
		if err != nil {
			lastErr = err
			continue
		}
		n.Proc = p
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = WaitTCP(ctx, n.HTTPAddr, p)
		cancel()
		if err != nil {
			p.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			lastErr = fmt.Errorf("%w; error.log: %s", err, lastLines(string(log), 5))
			if strings.Contains(lastErr.Error(), "in use") {
				continue
			}
			break
		}
		t.Cleanup(func() {
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Logf("--- nginx edge error.log tail:\n%s", log[max(0, len(log)-logTail):])
			}
		})
		return n
	}
	t.Fatalf("nginx edge: %v", lastErr)
	return nil
}
