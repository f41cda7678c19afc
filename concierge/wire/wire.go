// Package wire holds the JSON shapes of the concierge endpoints of the
// control plane (/internal/v1/concierge/...), shared by the server
// (portier/sched_api.go) and the concierge daemon.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Paths, relative to the control plane's base URL; NAME is the concierge's
// node name, ID a task id.
const (
	// GET ?after=VERSION[&wait_ms=N]: answers at once when the assignment's
	// version differs from VERSION, else when it changes, else after the wait
	// (default 25 s) with the same version.
	PathAssignments = "/internal/v1/concierge/%s/assignments"
	// POST StatusReport: 200 StatusAnswer; 409 code "stale_epoch" (stop the
	// task: it was reassigned); 404 code "unknown_task".
	PathStatus = "/internal/v1/concierge/%s/tasks/%d/status"
	// POST StatusBatch: 200 StatusBatchAnswer with one result per report,
	// in order; each result is judged alone (stale_epoch, unknown_task).
	// Up to MaxStatusBatch reports, applied in one transaction.
	PathStatusBatch = "/internal/v1/concierge/%s/status"
	// POST: marks the concierge draining and hands its tasks back (DrainAnswer).
	PathDrain = "/internal/v1/concierge/%s/drain"
	// GET ?tasks=1,2,3: which of these handed-back tasks are not yet running
	// on another concierge (HandoffAnswer).
	PathHandoff = "/internal/v1/concierge/%s/handoff"
	// POST RecordingsReport: 200 RecordingsAnswer with one result per
	// recording, in order. Up to MaxRecordings recordings.
	PathRecordings = "/internal/v1/concierge/%s/recordings"
)

// Error codes of the concierge endpoints (in {"error":{"code":...}}).
const (
	CodeStaleEpoch  = "stale_epoch"
	CodeUnknownTask = "unknown_task"
	CodeUnknownNode = "unknown_node"
)

// Assignment is every task the concierge must reconcile.
type Assignment struct {
	// Version changes whenever a task is added, removed, reassigned (epoch)
	// or has its desired state changed.
	Version string `json:"version"`
	Tasks   []Task `json:"tasks"`
	// LeaseMS is how long an assignment lives without a heartbeat: a
	// concierge cut off from the control plane that long must stop its tasks.
	LeaseMS int64 `json:"lease_ms"`
	// ProgressMS is how often the control plane wants the progress of each
	// running task (StatusReport.Progress), at least ProgressEvery. Zero,
	// as from control planes that do not read progress, asks for none.
	ProgressMS int64 `json:"progress_ms,omitempty"`
}

// Task is one assigned task.
type Task struct {
	ID           int64  `json:"id"`
	Epoch        int64  `json:"epoch"`
	Type         string `json:"type"`
	DesiredState string `json:"desired_state"` // running or stopped
	State        string `json:"state"`
	// Description is the compiled description (command, args, env, dirs, cost…).
	Description json.RawMessage `json:"description"`
	// Credential is the task's HLS credential at this epoch
	// (internal/hlscred), signed by the control plane for each assignment
	// of a task whose description has a CredentialArg; WithCredential puts
	// it in place. A failover raises the epoch and so brings a new
	// credential, while the description stays the same.
	Credential string `json:"credential,omitempty"`
}

// CredentialPlaceholder stands for Task.Credential in the argument
// Description.CredentialArg (the compiler writes it: compile.CredentialPlaceholder).
const CredentialPlaceholder = "{{PORTIER_HLS_CREDENTIAL}}"

// Description is the part of a compiled description the concierge uses.
type Description struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
	Dirs    []string          `json:"dirs,omitempty"`
	Cost    int               `json:"cost"`
	Input   string            `json:"input,omitempty"` // the URL the task reads (for failure reasons)
	// Relay is the relay base URL the control plane compiled in (its
	// fallback, serve --relay-rtmp-url) and RelayArgs the indexes of the
	// arguments on that relay. A concierge with its own relay
	// (--relay-rtmp) puts its base in their place (Rebase).
	Relay     string `json:"relay,omitempty"`
	RelayArgs []int  `json:"relay_args,omitempty"`
	// CredentialArg is the index of the argument holding
	// CredentialPlaceholder (0: none; see WithCredential).
	CredentialArg int `json:"credential_arg,omitempty"`
}

// WithCredential returns d with the credential cred in place of
// CredentialPlaceholder in its argument CredentialArg. A description
// without a CredentialArg is returned as it is; one with a CredentialArg
// needs a credential of printable ASCII without spaces (it goes into an
// HTTP header).
func (d Description) WithCredential(cred string) (Description, error) {
	if d.CredentialArg == 0 {
		return d, nil
	}
	i := d.CredentialArg
	if i < 0 || i >= len(d.Args) || !strings.Contains(d.Args[i], CredentialPlaceholder) {
		return d, fmt.Errorf("task description: argument %d holds no credential placeholder", i)
	}
	if cred == "" {
		return d, errors.New("the assignment carries no HLS credential for this task (is the control plane's cluster token set?)")
	}
	for _, r := range cred {
		if r <= ' ' || r >= 0x7f {
			return d, errors.New("the assignment's HLS credential contains a space, control or non-ASCII character")
		}
	}
	d.Args = slices.Clone(d.Args)
	d.Args[i] = strings.ReplaceAll(d.Args[i], CredentialPlaceholder, cred)
	return d, nil
}

// Rebase returns d with the relay base of its relay arguments (and of its
// input, when that is one of them) replaced by relay, e.g.
// "rtmp://edge-1:1935". Arguments that do not start with d.Relay + "/" are
// left alone, and so is everything when relay or d.Relay is empty.
func (d Description) Rebase(relay string) Description {
	relay = strings.TrimRight(relay, "/")
	if relay == "" || d.Relay == "" || relay == d.Relay {
		return d
	}
	prefix := d.Relay + "/"
	args := slices.Clone(d.Args)
	for _, i := range d.RelayArgs {
		if i < 0 || i >= len(args) || !strings.HasPrefix(args[i], prefix) {
			continue
		}
		if args[i] == d.Input {
			d.Input = relay + "/" + strings.TrimPrefix(d.Input, prefix)
		}
		args[i] = relay + "/" + strings.TrimPrefix(args[i], prefix)
	}
	d.Args, d.Relay = args, relay
	return d
}

// StatusReport is one state change of a task on a concierge.
type StatusReport struct {
	Epoch    int64  `json:"epoch"`
	State    string `json:"state"` // starting, running, backoff, failed, stopping, stopped
	ExitCode *int   `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
	LogTail  string `json:"log_tail,omitempty"`
	// Progress is the task's latest progress (running ffmpeg tasks only,
	// when the assignment asks for it: Assignment.ProgressMS). A report
	// whose State is the one already reported and that carries a Progress
	// is a progress sample, not a state change.
	Progress *Progress `json:"progress,omitempty"`
}

// ProgressEvery is how often ffmpeg writes its progress (-stats_period):
// the shortest period Assignment.ProgressMS can ask for.
const ProgressEvery = 5 * time.Second

// Progress is what a running ffmpeg reported of its work last (its
// -progress output), with the task's uptime. A figure ffmpeg could not
// give (it says N/A) is 0: an HLS or segmented record output has no size,
// so no bitrate.
type Progress struct {
	// Frame counts the video frames written; FPS is their rate.
	Frame int64   `json:"frame"`
	FPS   float64 `json:"fps"`
	// Bitrate is the output's bitrate in bits per second.
	Bitrate int64 `json:"bitrate"`
	// TotalSize is the bytes written.
	TotalSize int64 `json:"total_size"`
	// OutTimeMS is the media time written, in milliseconds.
	OutTimeMS int64 `json:"out_time_ms"`
	// Speed is media time over wall-clock time (1 for a live stream
	// that keeps up).
	Speed      float64 `json:"speed"`
	DropFrames int64   `json:"drop_frames"`
	DupFrames  int64   `json:"dup_frames"`
	// UptimeMS is how long the task's process has run.
	UptimeMS int64 `json:"uptime_ms"`
	// Stalled: ffmpeg wrote no new progress for two periods (the figures
	// are its last), its input or output is stuck.
	Stalled bool `json:"stalled,omitempty"`
}

// TaskStatusReport is a StatusReport of one task, in a StatusBatch.
type TaskStatusReport struct {
	TaskID int64 `json:"task_id"`
	StatusReport
}

// MaxStatusBatch bounds the reports of one StatusBatch.
const MaxStatusBatch = 1000

// StatusBatch is every state change a concierge has to report, in the order
// they happened (a task may appear more than once).
type StatusBatch struct {
	Reports []TaskStatusReport `json:"reports"`
}

// StatusBatchAnswer has one result per report of a StatusBatch.
type StatusBatchAnswer struct {
	Results []StatusResult `json:"results"`
}

// StatusResult is the answer to one report: the task's state now, or an
// error (Code CodeStaleEpoch or CodeUnknownTask: stop the task).
type StatusResult struct {
	TaskID int64  `json:"task_id"`
	State  string `json:"state,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// Error is an error of one result.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// StatusAnswer acknowledges a report.
type StatusAnswer struct {
	State string `json:"state"`
}

// DrainAnswer lists the tasks handed back for placement elsewhere.
type DrainAnswer struct {
	Tasks []int64 `json:"tasks"`
}

// HandoffAnswer lists handed-back tasks that do not run elsewhere yet.
type HandoffAnswer struct {
	Waiting []int64 `json:"waiting"`
}

// Heartbeat is the body of a concierge's heartbeat on the node API
// (/internal/v1/nodes/NAME/heartbeat): the subset of a node's heartbeat a
// concierge sends.
type Heartbeat struct {
	Load HeartbeatLoad `json:"load"`
	// Host is the concierge host's figures (nil from older concierges).
	Host *HostStats `json:"host,omitempty"`
}

// HeartbeatLoad is a concierge's load: the tasks it runs and their cost.
type HeartbeatLoad struct {
	Streams  int `json:"streams"`
	CostUsed int `json:"cost_used"`
}

// HostStats is what a node reports of itself and its host with every
// heartbeat. It has the fields of internal/nodewire.HostStats (the same
// JSON), which both convert from internal/hoststats.Stats.
type HostStats struct {
	Version       string `json:"version,omitempty"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	CPUs          int    `json:"cpus"`
	// CPUPercent is the host's CPU use since the previous heartbeat, 100
	// when every CPU was busy.
	CPUPercent       float64 `json:"cpu_percent"`
	Load1            float64 `json:"load1"`
	MemoryTotalBytes int64   `json:"memory_total_bytes"`
	MemoryUsedBytes  int64   `json:"memory_used_bytes"`
	ProcessRSSBytes  int64   `json:"process_rss_bytes"`
}

// MaxRecordings bounds the recordings of one RecordingsReport.
const MaxRecordings = 500

// RecordingsReport lists record-task files the concierge saw closed: the
// segment muxer finished them (a segment ended, or the task stopped). The
// control plane announces each file once (webhook recording.finished),
// whichever replica takes the report and however often it is sent, so a
// concierge sends a report again until it is answered.
type RecordingsReport struct {
	Recordings []Recording `json:"recordings"`
}

// Recording is one closed file of a record task.
type Recording struct {
	TaskID int64 `json:"task_id"`
	Epoch  int64 `json:"epoch"`
	// File is the file's name in the task's recording directory (the name
	// the recordings API lists it by).
	File string `json:"file"`
	// Size is its length in bytes when it was closed.
	Size int64 `json:"size"`
	// StartTime is when its first frame was recorded (from its name,
	// which the muxer writes from the recorder's clock).
	StartTime time.Time `json:"start_time"`
	// DurationSeconds is its media duration, as the segment muxer counted
	// it (end minus start of its packets' timestamps).
	DurationSeconds float64 `json:"duration_seconds"`
}

// RecordingsAnswer has one result per recording of a RecordingsReport.
// A result with an Error (CodeUnknownTask: no such record task) is final
// too: sending the recording again cannot help.
type RecordingsAnswer struct {
	Results []RecordingResult `json:"results"`
}

// RecordingResult is the answer to one recording: Duplicate when it was
// announced before.
type RecordingResult struct {
	File      string `json:"file"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Error     *Error `json:"error,omitempty"`
}
