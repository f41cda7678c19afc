package models

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"

	"github.com/portier/portier/internal/nodewire"
)

// Roles of a User.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// Scopes of an APIToken.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// Task config and task types.
const (
	TypeRestream = "restream"
	TypeRecord   = "record"
	TypePull     = "pull"
	TypeHLS      = "hls"
)

// Task states (Task.State) and desired states (Task.DesiredState uses
// DesiredRunning / DesiredStopped).
const (
	TaskPending  = "pending"
	TaskAssigned = "assigned"
	TaskStarting = "starting"
	TaskRunning  = "running"
	TaskBackoff  = "backoff"
	TaskFailed   = "failed"
	TaskStopping = "stopping"
	TaskStopped  = "stopped"

	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// User is a person who signs in to the UI or owns API tokens.
type User struct {
	ID           int64     `gorm:"primaryKey" json:"id"`
	Username     string    `json:"username"`
	PasswordHash string    `json:"-"`
	Role         string    `json:"role"`
	Disabled     bool      `json:"disabled"`
	Language     string    `json:"language"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// APIToken is a bearer token. Only a SHA-256 hash of the secret is stored;
// Prefix (the first characters of the token) finds the row and is shown in
// listings so users can tell tokens apart.
type APIToken struct {
	ID         int64      `gorm:"primaryKey" json:"id"`
	UserID     int64      `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Hash       string     `json:"-"`
	Scopes     string     `json:"-"` // comma-separated; see ScopeList
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Application is an RTMP application name ("live").
type Application struct {
	ID        int64     `gorm:"primaryKey" json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Stream is one publishable stream: app/name with its publish key and live state.
type Stream struct {
	ID            int64       `gorm:"primaryKey"`
	ApplicationID int64       //
	Application   Application `gorm:"foreignKey:ApplicationID"`
	Name          string
	OwnerID       int64
	Owner         User `gorm:"foreignKey:OwnerID"`
	PublishKey    string
	Enabled       bool
	AllowTakeover bool
	// HLSPublic: viewers play the stream's HLS without a play token.
	HLSPublic    bool `gorm:"column:hls_public"`
	Live         bool
	PublishCount int64
	// RevokedThrough: publishes numbered up to it (publish numbers are the
	// PublishCount after each publish) were revoked, by RevokeReason
	// (key_rotated, disabled): relays must end them and they are never
	// attached again.
	RevokedThrough int64
	RevokeReason   string
	LastPublishAt  *time.Time
	CodecInfo      RawJSON
	Bitrate        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// StreamOrigin records that an origin node holds a stream's publish now. A
// stream is live while it has at least one origin.
type StreamOrigin struct {
	ID       int64 `gorm:"primaryKey"`
	StreamID int64
	NodeName string
	Since    time.Time
	// PublishID is the stream's publish number of the publish the node
	// holds (AddOrigin); 0 when unknown (hook-reported publishes).
	PublishID int64
}

// TaskConfig is the user's configuration of work on a stream (a restream, a
// recording, a pull, an HLS ladder). Spec holds the type-specific JSON (see
// RestreamSpec, RecordSpec, PullSpec, HLSSpec). Version increases on every edit.
type TaskConfig struct {
	ID        int64 `gorm:"primaryKey"`
	StreamID  int64
	Type      string
	Name      string
	Enabled   bool
	Spec      RawJSON
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TaskDescription is a fully resolved, runnable task: what a concierge runs.
type TaskDescription struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Input   string            `json:"input,omitempty"`
	Outputs []string          `json:"outputs,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dirs    []string          `json:"dirs,omitempty"`   // local directories the runner creates first
	Cost    int               `json:"cost"`             // taskcost units (hundredths of a core)
	Labels  map[string]string `json:"labels,omitempty"` // concierge labels the task requires (see PlacementOf)
	// Relay and RelayArgs: the relay base compiled in and the arguments
	// on it, which a concierge with its own relay rebases (compile.Description).
	Relay     string `json:"relay,omitempty"`
	RelayArgs []int  `json:"relay_args,omitempty"`
	// CredentialArg: the argument holding the HLS credential placeholder,
	// which the concierge fills per assignment (compile.Description).
	CredentialArg int `json:"credential_arg,omitempty"`
	// RelayPull: an origin can pull the task's RTSP source itself
	// (compile.Description.RelayPull); see PlaceRelayPulls.
	RelayPull *RelayPull `json:"relay_pull,omitempty"`
}

// RelayPull is compile.RelayPull as stored.
type RelayPull struct {
	Source string `json:"source"`
}

// Value stores the description as JSON text.
func (d TaskDescription) Value() (driver.Value, error) { return jsonValue(d) }

// Scan reads the description from JSON text.
func (d *TaskDescription) Scan(src any) error { return jsonScan(src, d) }

// Task is one compiled instance of a TaskConfig that a concierge runs.
// Epoch is the fencing token: it increases on every (re)assignment.
type Task struct {
	ID            int64 `gorm:"primaryKey"`
	ConfigID      *int64
	ConfigVersion int64
	StreamID      int64
	Type          string
	Description   TaskDescription
	// Cost is Description.Cost in taskcost units (hundredths of a core),
	// at least 1 (set on create): placement sums it without reading
	// descriptions.
	Cost         int
	DesiredState string
	State        string
	NodeName     string
	LeaseUntil   *time.Time
	Epoch        int64
	Restarts     int
	LastExitCode *int
	LastError    string
	LogTail      string
	// Progress is a running ffmpeg task's latest progress report
	// (concierge/wire.Progress as JSON), "" when it has none.
	Progress  string
	StartedAt *time.Time
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NodeLoad is what a node reports in its heartbeat.
type NodeLoad nodewire.Load

// Value stores the load as JSON text.
func (l NodeLoad) Value() (driver.Value, error) { return jsonValue(l) }

// Scan reads the load from JSON text.
func (l *NodeLoad) Scan(src any) error { return jsonScan(src, l) }

// Labels are free-form node labels.
type Labels map[string]string

// Value stores the labels as JSON text.
func (l Labels) Value() (driver.Value, error) {
	if l == nil {
		return "{}", nil
	}
	return jsonValue(map[string]string(l))
}

// Scan reads the labels from JSON text.
func (l *Labels) Scan(src any) error { return jsonScan(src, (*map[string]string)(l)) }

// Capabilities are a node's capabilities (nodewire.NodeInfo.Capabilities).
type Capabilities []string

// Value stores the capabilities as a JSON list.
func (c Capabilities) Value() (driver.Value, error) {
	if c == nil {
		return "[]", nil
	}
	return jsonValue([]string(c))
}

// Scan reads the capabilities from JSON text.
func (c *Capabilities) Scan(src any) error { return jsonScan(src, (*[]string)(c)) }

// Node is a registered relay, concierge, HLS origin or CDN edge.
type Node struct {
	ID          int64 `gorm:"primaryKey"`
	Name        string
	Role        string
	RTMPAddress string `gorm:"column:rtmp_address"`
	HTTPAddress string `gorm:"column:http_address"`
	// Host is the host name the node runs on, as it reported it; with Role
	// and the addresses it tells a restart from another node of that name.
	Host string
	// Capacity is what the node registered: a concierge's CPU cores (its
	// task-cost budget, taskcost.FromCores), a CDN edge's egress in Mbit/s.
	Capacity int
	Labels   Labels
	// Capabilities are what the node registered it can do
	// (nodewire.CapRTSPPull).
	Capabilities  Capabilities
	Load          NodeLoad
	Version       string
	LastHeartbeat *time.Time
	RegisteredAt  time.Time
	Draining      bool
}

// AuditEvent records a change or a decision: who did what to which object,
// with what result and why.
type AuditEvent struct {
	ID      int64     `gorm:"primaryKey" json:"id"`
	Time    time.Time `gorm:"column:time" json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Object  string    `json:"object"`
	Result  string    `json:"result"`
	Reason  string    `json:"reason"`
	Node    string    `json:"node"`
	Addr    string    `json:"addr"`
	Details RawJSON   `json:"details"`
}

// RawJSON is a JSON document stored as text (portable across SQLite and Postgres).
type RawJSON json.RawMessage

// Value stores the document; an empty one is stored as {}.
func (r RawJSON) Value() (driver.Value, error) {
	if len(r) == 0 {
		return "{}", nil
	}
	if !json.Valid(r) {
		return nil, fmt.Errorf("invalid JSON document")
	}
	return string(r), nil
}

// Scan reads the document.
func (r *RawJSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*r = nil
	case string:
		*r = RawJSON(v)
	case []byte:
		*r = append(RawJSON(nil), v...)
	default:
		return fmt.Errorf("scan JSON from %T", src)
	}
	return nil
}

// MarshalJSON renders the document as is ({} when empty).
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("{}"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps a copy of the document.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// MustJSON marshals v into a RawJSON; it is for values that always marshal
// (maps of strings and numbers, plain structs).
func MustJSON(v any) RawJSON {
	b, err := json.Marshal(v)
	if err != nil {
		return RawJSON("{}")
	}
	return b
}

func jsonValue(v any) (driver.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func jsonScan(src any, dst any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("scan JSON from %T", src)
	}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, dst)
}
