package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/portier/portier/models"
)

// Event types (models holds them: endpoint filters name them).
const (
	StreamLive        = models.WebhookStreamLive
	StreamOffline     = models.WebhookStreamOffline
	PublishRefused    = models.WebhookPublishRefused
	TaskFailed        = models.WebhookTaskFailed
	TaskRecovered     = models.WebhookTaskRecovered
	NodeLost          = models.WebhookNodeLost
	RecordingFinished = models.WebhookRecordingFinished
	Test              = models.WebhookTest
)

// Event is one delivery's JSON body.
type Event struct {
	// ID is unique per event ("evt_" and 32 hex digits; Emit fills it).
	ID   string `json:"id"`
	Type string `json:"type"`
	// Time is when it happened (Emit fills it with now).
	Time time.Time `json:"time"`
	// Application is the application (RTMP app) of the stream the event
	// is about; it selects the endpoints of that application. Empty for
	// events of no application (node.lost): only global endpoints get them.
	Application string `json:"application,omitempty"`
	// Data is the event's details, one of the *Data types below by Type.
	Data any `json:"data,omitempty"`
}

// StreamData is the data of stream.live and stream.offline.
type StreamData struct {
	StreamID  int64  `json:"stream_id"`
	App       string `json:"app"`
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`       // the origin that holds (held) the publish
	PublishID int64  `json:"publish_id,omitempty"` // the stream's number of this publish
	Addr      string `json:"addr,omitempty"`       // the publisher's address (stream.live)
	Reason    string `json:"reason,omitempty"`     // stream.offline: why (publisher left, node lost, kicked, …)
}

// PublishRefusedData is the data of publish.refused. It never holds the
// key that was tried.
type PublishRefusedData struct {
	StreamID int64  `json:"stream_id,omitempty"` // 0 when no stream matched
	App      string `json:"app"`
	Name     string `json:"name"`
	Node     string `json:"node,omitempty"`
	Addr     string `json:"addr,omitempty"`
	Code     string `json:"code"` // unknown_stream, bad_key, disabled, …
	Reason   string `json:"reason"`
}

// TaskData is the data of task.failed and task.recovered.
type TaskData struct {
	TaskID       int64  `json:"task_id"`
	TaskConfigID int64  `json:"task_config_id,omitempty"`
	StreamID     int64  `json:"stream_id"`
	Type         string `json:"task_type"` // restream, record, pull, hls
	Node         string `json:"node,omitempty"`
	State        string `json:"state"`
	Error        string `json:"error,omitempty"` // task.failed: the reason (redacted)
	ExitCode     *int   `json:"exit_code,omitempty"`
	Restarts     int    `json:"restarts"`
}

// NodeData is the data of node.lost.
type NodeData struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// LastHeartbeat is when the node was last heard from.
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// Streams are the app/name of the publishes it held.
	Streams []string `json:"streams,omitempty"`
}

// RecordingData is the data of recording.finished: a record task closed
// one of its files (a segment ended, or the task stopped).
type RecordingData struct {
	StreamID     int64  `json:"stream_id"`
	App          string `json:"app"`
	Name         string `json:"name"`
	TaskID       int64  `json:"task_id"`
	TaskConfigID int64  `json:"task_config_id,omitempty"` // 0 when the config was deleted since
	Node         string `json:"node,omitempty"`           // the concierge that recorded it
	// File is the name the recordings API lists it by, Format its
	// container (ts, mp4, flv).
	File   string `json:"file"`
	Format string `json:"format"`
	// Size is its length in bytes.
	Size int64 `json:"size"`
	// StartTime is when its first frame was recorded.
	StartTime time.Time `json:"start_time"`
	// DurationSeconds is its media duration, as the segment muxer counted it.
	DurationSeconds float64 `json:"duration_seconds"`
	// DownloadURL is where the REST API serves it (GET with an API token
	// that may read the stream), on the control plane's --public-url.
	DownloadURL string `json:"download_url"`
}

// TestData is the data of a test delivery (SendTest).
type TestData struct {
	EndpointID int64  `json:"endpoint_id"`
	Message    string `json:"message"`
}

func newEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "evt_" + hex.EncodeToString(b)
}
