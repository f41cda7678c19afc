package relay

import (
	"strings"
	"testing"
)

// RTSP pulls are checked when the relay is built: only origins pull, a
// path is pulled once, and a bad URL is refused with the option's name.
func TestRTSPPullParams(t *testing.T) {
	cam := RTSPPull{Path: "live/cam1", URL: "rtsp://127.0.0.1:1/cam"}
	for _, tc := range []struct {
		name  string
		p     Params
		want  string // "" for success
		pulls int
	}{
		{"origin", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{cam, {Path: "live/cam2", URL: "rtsp://127.0.0.1:1/b", Transport: "tcp"}}}, "", 2},
		{"edge", Params{Role: RoleEdge, StaticOrigins: []string{"127.0.0.1:1"}, RTSPPulls: []RTSPPull{cam}}, "for origins", 0},
		{"twice", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{cam, cam}}, "pulled twice", 0},
		{"bad URL", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{{Path: "live/x", URL: "http://cam/x"}}}, "--rtsp-pull", 0},
		{"bad transport", Params{Role: RoleOrigin, RTSPPulls: []RTSPPull{{Path: "live/x", URL: "rtsp://cam/x", Transport: "sctp"}}}, "transport", 0},
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
