package sched

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
)

// TestAssignmentHLSCredential: an HLS task's assignment carries the
// credential of its (stream, task, epoch); a failover (epoch+1) brings a
// new one while the description, and so its version, stays the same; the
// concierge's substitution gives ffmpeg exactly that credential.
func TestAssignmentHLSCredential(t *testing.T) {
	const tok = "cluster-tok"
	d, err := compile.Compile(compile.TaskConfigInput{Type: compile.TypeHLS, Renditions: []compile.Rendition{{Preset: "360p"}}},
		compile.StreamState{ID: 42, App: "live", Name: "show"},
		compile.Env{RelayRTMPURL: "rtmp://127.0.0.1:1935", HLSOriginURL: "http://127.0.0.1:8090"})
	if err != nil {
		t.Fatal(err)
	}
	// What the store keeps of a description (live's toModelDescription).
	raw, _ := json.Marshal(models.TaskDescription{Command: d.Command, Args: d.Args, Input: d.Input, Outputs: d.Outputs, Env: d.Env,
		Dirs: d.Dirs, Cost: d.Cost, Labels: d.Labels, Relay: d.Relay, RelayArgs: d.RelayArgs, CredentialArg: d.CredentialArg})
	task := models.SchedTask{ID: 9, StreamID: 42, Type: models.TypeHLS, Description: raw, DesiredState: "running", Epoch: 1}
	other := models.SchedTask{ID: 10, StreamID: 42, Type: models.TypeRestream, Description: []byte(`{"command":"ffmpeg"}`), DesiredState: "running", Epoch: 1}

	cred := func(a wire.Assignment) (wire.Task, string) {
		t.Helper()
		if a.Tasks[1].Credential != "" {
			t.Errorf("a restream task got a credential")
		}
		wt := a.Tasks[0]
		var wd wire.Description
		if err := json.Unmarshal(wt.Description, &wd); err != nil {
			t.Fatal(err)
		}
		got, err := wd.WithCredential(wt.Credential)
		if err != nil {
			t.Fatal(err)
		}
		return wt, got.Args[wd.CredentialArg]
	}
	a1 := assignmentOf([]models.SchedTask{task, other}, time.Second, tok)
	wt1, h1 := cred(a1)
	c, err := hlscred.Verify(tok, wt1.Credential)
	if err != nil || c != (hlscred.Cred{StreamID: 42, TaskID: 9, Epoch: 1}) {
		t.Fatalf("credential %q: %+v %v", wt1.Credential, c, err)
	}
	if h1 != "Authorization: Bearer "+wt1.Credential {
		t.Errorf("header argument %q", h1)
	}

	task.Epoch = 2 // failover
	a2 := assignmentOf([]models.SchedTask{task, other}, time.Second, tok)
	wt2, h2 := cred(a2)
	c, err = hlscred.Verify(tok, wt2.Credential)
	if err != nil || c.Epoch != 2 || wt2.Credential == wt1.Credential || h2 == h1 {
		t.Fatalf("after failover: %q %+v %v", wt2.Credential, c, err)
	}
	if !bytes.Equal(wt1.Description, wt2.Description) {
		t.Error("the description changed with the epoch")
	}
	var md models.TaskDescription
	_ = json.Unmarshal(wt2.Description, &md)
	back := compile.Description{Type: models.TypeHLS, Command: md.Command, Args: md.Args, Input: md.Input, Outputs: md.Outputs, Env: md.Env,
		Dirs: md.Dirs, Cost: md.Cost, Labels: md.Labels, Relay: md.Relay, RelayArgs: md.RelayArgs, CredentialArg: md.CredentialArg}
	if v := back.Hash(); v != d.Version {
		t.Errorf("description version %s, compiled %s", v, d.Version)
	}
	if a1.Version == a2.Version {
		t.Error("the assignment version did not change with the epoch")
	}
	// Without a cluster token there is nothing to sign with: the concierge
	// then refuses to start the task rather than PUT without a credential.
	a0 := assignmentOf([]models.SchedTask{task, other}, time.Second, "")
	var wd wire.Description
	_ = json.Unmarshal(a0.Tasks[0].Description, &wd)
	if _, err := wd.WithCredential(a0.Tasks[0].Credential); err == nil {
		t.Error("a task without a credential would start")
	}
}
