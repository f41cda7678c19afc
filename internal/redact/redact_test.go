package redact

import (
	"slices"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"ffmpeg refused restream target", []string{"live_1234_SeCrEtKeY"},
			"[tcp @ 0x55] Connection to tcp://127.0.0.1:1 failed: Connection refused\nrtmp://127.0.0.1:1/live2/live_1234_SeCrEtKeY: Connection refused",
			"[tcp @ 0x55] Connection to tcp://127.0.0.1:1 failed: Connection refused\nrtmp://127.0.0.1:1/live2/***: Connection refused"},
		{"url-escaped secret", []string{"a key/with+chars"},
			"rtmp://h/app/a%20key%2Fwith+chars: I/O error and ?key=a+key%2Fwith%2Bchars",
			"rtmp://h/app/***: I/O error and ?key=***"},
		{"userinfo", nil,
			"rtsp://admin:hunter2@cam.local:554/stream1: 401 Unauthorized",
			"rtsp://***@cam.local:554/stream1: 401 Unauthorized"},
		{"query credentials", nil,
			"rtmp://relay:1935/live/cam?key=abcdef&x=1 and srt://t:9000?streamid=#!::r=live/k,m=publish&latency=20 and ?portier_internal=restream.sig",
			"rtmp://relay:1935/live/cam?key=***&x=1 and srt://t:9000?streamid=***&latency=20 and ?portier_internal=***"},
		{"token and sig, any case", nil, "GET /x?Token=t0k3n&SIG=abc", "GET /x?Token=***&SIG=***"},
		{"bearer header", nil, "Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: Bearer ***"},
		{"hls credential", nil, "headers: Authorization: Bearer hls1.7.12.3.00112233445566778899aabbccddeeff\r\n; got hls1.7.12.3.0a1b2c3d4e5f60718293a4b5c6d7e8f9 refused",
			"headers: Authorization: Bearer ***\r\n; got *** refused"},
		{"short secret only as a URL part", []string{"target"},
			"target refused connection: rtmp://h:1/live/target: Connection refused; /x/targets stays; ?k=target&x=target",
			"target refused connection: rtmp://h:1/live/***: Connection refused; /x/targets stays; ?k=***&x=***"},
		{"longest first", []string{"key", "keyandmore12345"},
			"rtmp://h/app/keyandmore12345 /key",
			"rtmp://h/app/*** /***"},
		{"nothing secret", []string{"", "ab"}, "ab: exited with code 1", "ab: exited with code 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := String(tc.in, tc.secrets...); got != tc.want {
				t.Errorf("\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNilRedactorAppliesPatterns(t *testing.T) {
	var r *Redactor
	if got := r.String("rtmp://u:p@h/a?key=k"); got != "rtmp://***@h/a?key=***" {
		t.Fatal(got)
	}
}

func TestURLSecrets(t *testing.T) {
	for _, tc := range []struct {
		url       string
		keyInPath bool
		want      []string
	}{
		{"rtmp://a.rtmp.youtube.com/live2/xxxx-yyyy", true, []string{"xxxx-yyyy"}},
		{"rtmp://a.rtmp.youtube.com/live2/xxxx-yyyy", false, nil},
		{"rtmp://a.rtmp.youtube.com/live2", true, nil},
		{"rtsp://user:pw@cam/x?token=t1", false, []string{"user", "pw", "t1"}},
		{"srt://h:9000?streamid=sid&latency=1", true, []string{"sid"}},
		{"not a url", true, nil},
	} {
		got := URLSecrets(tc.url, tc.keyInPath)
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("URLSecrets(%q, %v) = %q, want %q", tc.url, tc.keyInPath, got, want)
		}
	}
}

func TestTaskSecrets(t *testing.T) {
	args := []string{"-hide_banner", "-i", "rtmp://127.0.0.1:1935/live/cam?portier_internal=restream",
		"-headers", "Authorization: Bearer tok-123\r\n", "-c", "copy", "-f", "flv", "rtmp://target/app/THEKEY"}
	got := TaskSecrets("restream", args)
	for _, want := range []string{"restream", "tok-123", "THEKEY"} {
		if !slices.Contains(got, want) {
			t.Errorf("TaskSecrets misses %q: %q", want, got)
		}
	}
	if slices.Contains(TaskSecrets("record", []string{"-i", "rtmp://r/live/cam", "/rec/live/cam/%Y.ts"}), "cam") {
		t.Error("a record task's stream name is not a secret")
	}
	red := New(got...)
	line := "rtmp://target/app/THEKEY: Connection refused"
	if out := red.String(line); strings.Contains(out, "THEKEY") {
		t.Error(out)
	}
}
