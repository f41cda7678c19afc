package rtmp

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/flv/flvtest"
)

// Our publish and play clients against a real server, nginx-rtmp, which
// compresses chunk headers (types 1-3) and uses extended timestamps the way
// production servers do.

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginxRTMP runs nginx with only an RTMP "live" application and
// returns its rtmp:// base URL.
func startNginxRTMP(t *testing.T) string {
	t.Helper()
	bin := lookTool(t, "nginx")
	module := "/usr/lib/nginx/modules/ngx_rtmp_module.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("libnginx-mod-rtmp is required: %v", err)
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
load_module %[2]s;
events { worker_connections 64; }
rtmp {
    access_log off;
    server {
        listen 127.0.0.1:%[3]d;
        chunk_size 4096;
        application live { live on; }
    }
}
`, dir, module, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "rtmp://" + addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %v\n%s\n%s", addr, err, out.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sampleTags is the audio and video of media/flv's ffmpeg sample.
func sampleTags(t *testing.T) []flv.Tag {
	var tags []flv.Tag
	for _, tag := range flvtest.SampleTags(t) {
		if tag.Type == flv.TagAudio || tag.Type == flv.TagVideo {
			tags = append(tags, tag)
		}
	}
	return tags
}

func TestClientsWithNginxRTMP(t *testing.T) {
	base := startNginxRTMP(t)
	ctx := testCtx(t)
	pub, err := Dial(ctx, base+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(ctx, "ext"); err != nil {
		t.Fatal(err)
	}
	player, err := Dial(ctx, base+"/live", ClientConfig{ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	if err := player.Play(ctx, "ext"); err != nil {
		t.Fatal(err)
	}
	// Timestamps start just below 0xFFFFFF so nginx's stream crosses into
	// extended timestamps, with multi-chunk messages at its 4096 chunk size.
	const offset = 0xffffff - 150
	tags := sampleTags(t)
	for _, tag := range tags {
		if err := pub.WriteMessage(Message{Type: tag.Type, Timestamp: tag.Timestamp + offset, Payload: tag.Payload}); err != nil {
			t.Fatal(err)
		}
	}
	// nginx sends the codec headers first and may interleave audio and
	// video differently: compare each track in order.
	want := map[uint8][]flv.Tag{}
	for _, tag := range tags {
		want[tag.Type] = append(want[tag.Type], tag)
	}
	got := map[uint8]int{}
	i, extended := 0, 0
	for i < len(tags) {
		m, err := player.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", i, len(tags), err)
		}
		if m.Type != flv.TagAudio && m.Type != flv.TagVideo {
			continue
		}
		k := got[m.Type]
		if k >= len(want[m.Type]) {
			t.Fatalf("extra message of type %d", m.Type)
		}
		w := want[m.Type][k]
		if !bytes.Equal(m.Payload, w.Payload) {
			t.Fatalf("type %d message %d: len %d, want len %d", m.Type, k, len(m.Payload), len(w.Payload))
		}
		if m.Timestamp != w.Timestamp+offset {
			t.Fatalf("type %d message %d: timestamp %#x, want %#x", m.Type, k, m.Timestamp, w.Timestamp+offset)
		}
		if m.Timestamp >= 0xffffff {
			extended++
		}
		got[m.Type]++
		i++
	}
	if extended == 0 {
		t.Fatal("no message crossed into extended timestamps")
	}
	t.Logf("%d messages through nginx-rtmp, %d with extended timestamps", i, extended)
}
