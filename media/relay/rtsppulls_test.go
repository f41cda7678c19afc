package relay

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/rtsppull"
)

// RTSP pulls are checked when the relay is built: only origins pull, a
// path is pulled once, and a bad URL is refused with the option's name.
func TestRTSPPullParams(t *testing.T) {
	cam := RTSPPull{Path: "live/cam1", Key: "k1", URL: "rtsp://127.0.0.1:1/cam"}
	for _, tc := range []struct {
		name  string
		p     Params
		want  string // "" for success
		pulls int
	}{
		{"origin", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{cam, {Path: "live/cam2", Key: "k2", URL: "rtsp://127.0.0.1:1/b", Transport: "tcp"}}}, "", 2},
		{"edge", Params{Role: RoleEdge, StaticOrigins: []string{"127.0.0.1:1"}, RTSPPulls: []RTSPPull{cam}}, "for origins", 0},
		{"twice", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{cam, cam}}, "pulled twice", 0},
		{"no key", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{{Path: "live/x", URL: "rtsp://cam/x"}}}, "key is required", 0},
		{"bad URL", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{{Path: "live/x", Key: "k", URL: "http://cam/x"}}}, "URL must be", 0},
		{"bad transport", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{{Path: "live/x", Key: "k", URL: "rtsp://cam/x", Transport: "sctp"}}}, "transport", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Name, tc.p.RTMPAddr = "n1", "127.0.0.1:0"
			if tc.p.Role == RoleOrigin {
				tc.p.ControlURL = "http://127.0.0.1:1"
			}
			r, err := New(tc.p)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("New: %v, want an error about %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			st := r.RTSPPulls()
			if len(st) != tc.pulls || st[0].Path != "live/cam1" || st[0].Playing {
				t.Errorf("pulls before Start: %+v", st)
			}
		})
	}
}

// SetRTSPPulls changes pulls per path: unchanged ones keep running (the
// same puller), changed ones are rebuilt, removed ones stop, and an
// invalid set changes nothing. The relay API takes the same set.
func TestSetRTSPPulls(t *testing.T) {
	r := start(t, Params{Role: RoleOrigin, Name: "o1", ControlURL: deadURL(t), ClusterToken: "tok"})
	a := RTSPPull{Path: "live/a", Key: "ka", URL: "rtsp://127.0.0.1:1/a"}
	b := RTSPPull{Path: "live/b", Key: "kb", URL: "rtsp://127.0.0.1:1/b"}
	if err := r.SetRTSPPulls([]RTSPPull{a, b}); err != nil {
		t.Fatal(err)
	}
	puller := func(path string) *rtsppull.Puller {
		r.pulls.mu.Lock()
		defer r.pulls.mu.Unlock()
		if e := r.pulls.byPath[path]; e != nil {
			return e.pl
		}
		return nil
	}
	pa, pb := puller("live/a"), puller("live/b")
	b2 := b
	b2.URL = "rtsp://127.0.0.1:1/b2"
	c := RTSPPull{Path: "live/c", Key: "kc", URL: "rtsp://127.0.0.1:1/c", Transport: "tcp"}
	if err := r.SetRTSPPulls([]RTSPPull{a, b2, c}); err != nil {
		t.Fatal(err)
	}
	if puller("live/a") != pa {
		t.Error("an unchanged pull was rebuilt")
	}
	if p := puller("live/b"); p == pb || p == nil {
		t.Error("a changed pull was not rebuilt")
	}
	if err := r.SetRTSPPulls([]RTSPPull{a, a}); err == nil {
		t.Error("a path pulled twice was accepted")
	}
	if got := paths(r.RTSPPulls()); got != "live/a live/b live/c" {
		t.Errorf("after a refused change: %q, want the previous set", got)
	}
	testutil.Eventually(t, 10*time.Second, "pulls of an unreachable camera fail and retry", func() bool {
		for _, st := range r.RTSPPulls() {
			if st.Failures == 0 || st.Playing || strings.Contains(st.LastError, "ka") {
				return false
			}
		}
		return true
	})

	// The relay API: the cluster token, the whole set, never a key back.
	api := "http://" + r.HTTPAddr().String() + "/api/v1/rtsp-pulls"
	put := func(token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, api, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := put("wrong", `{"pulls":[]}`); code != http.StatusUnauthorized {
		t.Errorf("PUT without the cluster token: HTTP %d", code)
	}
	if code, body := put("tok", `{"pulls":[{"path":"live/a","url":"rtsp://127.0.0.1:1/a"}]}`); code != http.StatusBadRequest || !strings.Contains(body, "key is required") {
		t.Errorf("PUT without a key: HTTP %d %s", code, body)
	}
	if code, body := put("tok", `{"pulls":[{"path":"live/c","key":"secret-kc","url":"rtsp://u:secret-pw@127.0.0.1:1/c"}]}`); code != http.StatusOK ||
		strings.Contains(body, "secret") || !strings.Contains(body, `"path":"live/c"`) {
		t.Errorf("PUT one pull: HTTP %d %s", code, body)
	}
	if got := paths(r.RTSPPulls()); got != "live/c" {
		t.Errorf("after PUT: %q, want live/c only", got)
	}
	if pa.Status().Playing {
		t.Error("a removed pull still plays")
	}
	if err := r.SetRTSPPulls(nil); err != nil || len(r.RTSPPulls()) != 0 {
		t.Errorf("empty set: %v, %d pulls left", err, len(r.RTSPPulls()))
	}
}

func paths(list []rtsppull.Status) string {
	var out []string
	for _, st := range list {
		out = append(out, st.Path)
	}
	return strings.Join(out, " ")
}

// Pulls the control plane assigns (heartbeat answers) run besides the
// relay's own: its own win a path both name, an unchanged answer changes
// nothing, and the heartbeat reports the assigned ones only, with the
// failure in the words a concierge uses.
func TestAssignedRTSPPulls(t *testing.T) {
	r := start(t, Params{Role: RoleOrigin, Name: "o1", ControlURL: deadURL(t), ClusterToken: "tok"})
	own := RTSPPull{Path: "live/a", Key: "ka", URL: "rtsp://127.0.0.1:1/own"}
	if err := r.SetRTSPPulls([]RTSPPull{own}); err != nil {
		t.Fatal(err)
	}
	if reps := r.pullReports(); reps == nil || len(reps) != 0 {
		t.Fatalf("an origin without assigned pulls reports %v, want an empty list (it takes pulls)", reps)
	}
	orders := []nodewire.PullOrder{
		{TaskID: 1, Path: "live/a", Key: "k1", URL: "rtsp://127.0.0.1:1/assigned"},
		{TaskID: 2, Path: "live/b", Key: "k2", URL: "rtsp://127.0.0.1:1/b"},
	}
	r.assignPulls(orders)
	st := r.RTSPPulls()
	if got := paths(st); got != "live/a live/b" || !strings.HasSuffix(st[0].URL, "/own") {
		t.Fatalf("pulls %+v, want the own live/a and the assigned live/b", st)
	}
	r.pulls.mu.Lock()
	pb := r.pulls.byPath["live/b"].pl
	r.pulls.mu.Unlock()
	r.assignPulls(orders)
	r.pulls.mu.Lock()
	same := r.pulls.byPath["live/b"].pl == pb
	r.pulls.mu.Unlock()
	if !same {
		t.Error("the same answer rebuilt a pull")
	}
	testutil.Eventually(t, 10*time.Second, "the assigned pull reported failing", func() bool {
		reps := r.pullReports()
		return len(reps) == 1 && reps[0].TaskID == 2 && !reps[0].Playing && reps[0].Failures > 0 &&
			strings.HasPrefix(reps[0].Error, "source refused connection")
	})
	// The relay's own set drops live/a: the assigned one takes the path.
	if err := r.SetRTSPPulls(nil); err != nil {
		t.Fatal(err)
	}
	if st := r.RTSPPulls(); paths(st) != "live/a live/b" || !strings.HasSuffix(st[0].URL, "/assigned") {
		t.Fatalf("after the own pull went: %+v", st)
	}
	r.assignPulls([]nodewire.PullOrder{})
	if st := r.RTSPPulls(); len(st) != 0 {
		t.Fatalf("after an empty answer: %+v", st)
	}
}
