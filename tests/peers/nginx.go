package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NginxRTMPModule is where Debian's libnginx-mod-rtmp installs the module.
const NginxRTMPModule = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// NginxOpts configures NginxRTMP. Hook URLs are absolute http:// URLs
// (nginx-rtmp cannot set headers, so put a token in the query string).
type NginxOpts struct {
	OnPublish     string // on_publish
	OnPublishDone string // on_publish_done
	OnPlay        string // on_play
	OnPlayDone    string // on_play_done
	OnDone        string // on_done (publish or play ended)
	// Apps are the RTMP application names; default ["live"]. Each gets
	// `live on` and the hooks above.
	Apps []string
	// MasterProcess runs a master and Workers worker processes instead of
	// the single-process `master_process off` mode. Benchmarks use it to run
	// nginx the way it runs in production.
	MasterProcess bool
	// Workers is worker_processes when MasterProcess is set; default 1.
	Workers int
	// HTTPStat adds an HTTP server on a free port serving rtmp_stat at
	// /stat (Nginx.StatURL).
	HTTPStat bool
	// ChunkSize is the outbound RTMP chunk size; default 4096.
	ChunkSize int
	// AppDirectives are raw directives added inside every application
	// block (e.g. "wait_key on;").
	AppDirectives []string
	// ServerDirectives are raw directives added inside the rtmp server
	// block (e.g. "ack_window 100000;", "ping 1s;").
	ServerDirectives []string
	// LogLevel is the error_log level; default "info".
	LogLevel string
}

// Nginx is a running nginx with libnginx-mod-rtmp.
type Nginx struct {
	Proc     *Proc
	Dir      string // prefix directory holding nginx.conf, logs, temp files
	RTMPAddr string // 127.0.0.1:PORT of the RTMP listener
	HTTPAddr string // 127.0.0.1:PORT of the stat server, if HTTPStat
}

// RTMPURL returns rtmp://ADDR/app/name.
func (n *Nginx) RTMPURL(app, name string) string {
	return fmt.Sprintf("rtmp://%s/%s/%s", n.RTMPAddr, app, name)
}

// StatURL is the rtmp_stat XML page (HTTPStat only).
func (n *Nginx) StatURL() string { return "http://" + n.HTTPAddr + "/stat" }

// NginxConfig renders the nginx.conf NginxRTMP writes for prefix dir.
func NginxConfig(dir, rtmpAddr, httpAddr string, o NginxOpts) string {
	apps := o.Apps
	if len(apps) == 0 {
		apps = []string{"live"}
	}
	chunk := o.ChunkSize
	if chunk <= 0 {
		chunk = 4096
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load_module %s;\n", NginxRTMPModule)
	b.WriteString("daemon off;\n")
	if o.MasterProcess {
		w := o.Workers
		if w <= 0 {
			w = 1
		}
		b.WriteString("master_process on;\n")
		fmt.Fprintf(&b, "worker_processes %d;\n", w)
		if os.Geteuid() == 0 {
			// Workers would run as nobody and could not enter the 0700
			// temp directory.
			b.WriteString("user root root;\n")
		}
	} else {
		b.WriteString("master_process off;\n")
	}
	fmt.Fprintf(&b, "pid %s;\n", filepath.Join(dir, "nginx.pid"))
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	fmt.Fprintf(&b, "error_log %s %s;\n", filepath.Join(dir, "error.log"), level)
	b.WriteString("worker_rlimit_nofile 16384;\n")
	b.WriteString("events {\n    worker_connections 8192;\n}\n")
	b.WriteString("rtmp {\n    server {\n")
	fmt.Fprintf(&b, "        listen %s;\n", rtmpAddr)
	fmt.Fprintf(&b, "        chunk_size %d;\n", chunk)
	for _, d := range o.ServerDirectives {
		fmt.Fprintf(&b, "        %s\n", d)
	}
	for _, app := range apps {
		fmt.Fprintf(&b, "        application %s {\n            live on;\n            record off;\n", app)
		for _, h := range []struct{ dir, url string }{
			{"on_publish", o.OnPublish}, {"on_publish_done", o.OnPublishDone},
			{"on_play", o.OnPlay}, {"on_play_done", o.OnPlayDone}, {"on_done", o.OnDone},
		} {
			if h.url != "" {
				fmt.Fprintf(&b, "            %s %s;\n", h.dir, h.url)
			}
		}
		for _, d := range o.AppDirectives {
			fmt.Fprintf(&b, "            %s\n", d)
		}
		b.WriteString("        }\n")
	}
	b.WriteString("    }\n}\n")
	if httpAddr != "" {
		b.WriteString("http {\n")
		fmt.Fprintf(&b, "    access_log %s;\n", filepath.Join(dir, "access.log"))
		for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&b, "    %s_temp_path %s;\n", tmp, filepath.Join(dir, "tmp", tmp))
		}
		fmt.Fprintf(&b, "    server {\n        listen %s;\n        location /stat {\n            rtmp_stat all;\n        }\n    }\n", httpAddr)
		b.WriteString("}\n")
	}
	return b.String()
}

// NginxRTMP starts nginx with libnginx-mod-rtmp on a free 127.0.0.1 port,
// with its config, logs and temp files in t.TempDir(), and waits until the
// RTMP port accepts connections. It retries on a port taken in between.
func NginxRTMP(t testing.TB, o NginxOpts) *Nginx {
	t.Helper()
	bin := RequireTool(t, "nginx")
	RequireTool(t, NginxRTMPModule)
	var lastErr error
	for range 3 {
		n, err := startNginx(t, bin, o)
		if err == nil {
			return n
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("nginx-rtmp: %v", lastErr)
	return nil
}

func startNginx(t testing.TB, bin string, o NginxOpts) (*Nginx, error) {
	dir := t.TempDir()
	n := &Nginx{Dir: dir, RTMPAddr: FreeAddr(t)}
	if o.HTTPStat {
		n.HTTPAddr = FreeAddr(t)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("nginx temp dir: %w", err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(NginxConfig(dir, n.RTMPAddr, n.HTTPAddr, o)), 0o644); err != nil {
		return nil, fmt.Errorf("write nginx.conf: %w", err)
	}
	// -e sets the error log before the config is read (the compiled-in
	// default under /var/log may not be writable).
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Dir = dir
	p, err := startProc(t, "nginx", cmd, false)
	if err != nil {
		return nil, err
	}
	n.Proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := WaitTCP(ctx, n.RTMPAddr, p); err != nil {
		p.Stop()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("%w; error.log: %s", err, lastLines(string(log), 5))
	}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("--- nginx error.log tail:\n%s", log[max(0, len(log)-logTail):])
		}
	})
	return n, nil
}
