// Package views holds the operator UI's templ components and the view models
// they render. Handlers (in package portier) build a view model from store
// records; no database record reaches a template.
package views

import (
	"github.com/portier/portier/web/i18n"
)

// Page is what every full page needs: the language, who is signed in, the
// session's CSRF token for forms and the navigation state.
type Page struct {
	Title string
	Lang  i18n.Lang
	User  *UserBadge // nil when signed out
	CSRF  string
	Nav   string // the active navigation entry: dashboard, streams, tasks, cluster, users, audit, tokens, webhooks, account
	Flash string // a one-line success message
	Error string // a one-line error message
}

// T translates msg into the page's language.
func (p Page) T(msg string, args ...any) string { return p.Lang.T(msg, args...) }

// UserBadge is the signed-in user as the layout shows it.
type UserBadge struct {
	Username string
	Role     string
	IsAdmin  bool
	CanWrite bool
}

// FieldErrors maps a form field's name to what is wrong with it.
type FieldErrors map[string]string

// Get returns the error of field (empty when none).
func (f FieldErrors) Get(field string) string { return f[field] }

// Login is the sign-in page.
type Login struct {
	Username string
	Next     string
	Error    string
}

// StreamRow is one stream in a list.
type StreamRow struct {
	ID        int64
	App       string
	Name      string
	Owner     string
	Enabled   bool
	Live      bool
	Bitrate   string
	Video     string // codec and resolution, e.g. "H264 1280x720 25fps"
	Audio     string
	Uptime    string
	Viewers   string
	Origins   []string
	Publishes int64
	// Publisher is the publisher's address and protocol as the origin saw
	// it ("192.0.2.7:50312 (RTMP)"), Encoder the software it named, GOP the
	// last keyframe interval ("2.0 s (50 frames)"); empty when unknown.
	Publisher string
	Encoder   string
	GOP       string
	// BitrateGraph and ViewersGraph are the last hour (dashboard only;
	// nil elsewhere).
	BitrateGraph, ViewersGraph *Spark
}

// Spark is one small graph: its values oldest first, the latest as text,
// and what it shows.
type Spark struct {
	Label  string
	Latest string
	Values []float64
}

// DashboardTotals are the cluster's figures at the top of the dashboard.
type DashboardTotals struct {
	Live                    int
	Ingest, Egress, Viewers Spark
	Tasks                   []StateCount // tasks by state, in lifecycle order
}

// StateCount is how many tasks are in a state.
type StateCount struct {
	State string
	Count int64
}

// Streams is the stream list page.
type Streams struct {
	Rows      []StreamRow
	CanCreate bool
	Form      CreateStream
}

// CreateStream is the new-stream form.
type CreateStream struct {
	App    string
	Name   string
	Errors FieldErrors
}

// StreamDetail is one stream's page.
type StreamDetail struct {
	Row        StreamRow
	CanEdit    bool
	IsOwner    bool
	KeyHint    string
	Revealed   bool   // the key and the commands that embed it are shown
	Key        string // only when Revealed
	OBSServer  string
	OBSKey     string // only when Revealed
	IngestURL  string // only when Revealed
	FFmpeg     string // only when Revealed
	PlayRTMP   string
	PlayFLV    string // the preview's (same-site, not counted as a viewer)
	PlayURLs   []PlayURL
	PlayHLS    string // empty when the stream has no HLS
	Thumbnail  string // URL of a recent frame (JPEG); empty while offline
	Configs    []TaskConfigRow
	Tasks      []TaskRow
	NewKeyNote bool // the key was just rotated
	// Recordings are the stream's recorded segments, newest first (nil
	// without a record directory); RecordingNow: a record task runs.
	Recordings   []RecordingRow
	HasRecordDir bool
	RecordingNow bool
}

// RecordingRow is one recorded segment on a stream's page.
type RecordingRow struct {
	Name     string
	Start    string
	Duration string
	Size     string
}

// TaskConfigRow is one task config in a stream's list.
type TaskConfigRow struct {
	ID      int64
	Type    string
	Name    string
	Enabled bool
	Summary string
	Version int64
}

// TaskConfigForm adds or edits a task config. Field names follow the API's
// spec fields, so the store's validation errors land next to the right input.
type TaskConfigForm struct {
	StreamID   int64
	StreamName string
	ID         int64 // 0: a new config
	Type       string
	Name       string
	NameRule   string // the rule for names, shown as the field's hint
	Enabled    bool
	// restream
	Target string
	Key    string
	Format string
	// record
	SegmentSeconds string
	RecordFormat   string
	// pull
	Source string
	// hls: one rendition per line, "name WIDTHxHEIGHT VIDEO_KBPS AUDIO_KBPS"
	Renditions        string
	HLSSegmentSeconds string
	// Preset is the chosen entry of Presets (restream targets or HLS
	// ladders; "" for custom), the menu that fills the fields.
	Preset  string
	Presets []PresetOption
	// KeyShape and KeyHelp describe the key the target's platform expects
	// (restream; English, the view translates the help).
	KeyShape, KeyHelp string
	Errors            FieldErrors
}

// PresetOption is one entry of a task config form's preset menu; the ""
// entry is custom. Its data fills the fields (app.js at once, or the
// server on "Apply preset").
type PresetOption struct {
	ID, Name string // Name in English: the view translates it
	// restream: the ingest URL and the key's placeholder and help
	Target, KeyShape, Help string
	// hls: the ladder as lines of the renditions field
	Lines string
}

// TaskRow is one task.
type TaskRow struct {
	ID         int64
	StreamID   int64
	StreamName string
	Type       string
	ConfigName string
	State      string
	Desired    string
	Node       string
	Restarts   int
	ExitCode   string
	LastError  string
	Reason     string
	Updated    string
	CanRestart bool
	// Progress is a running ffmpeg task's latest figures as text ("" when
	// it reports none); Stalled: its ffmpeg stopped writing progress.
	Progress string
	Stalled  bool
	// Runs is how many times the task's config has run (its tasks), in
	// lists that show one row per config; 0 elsewhere.
	Runs int
}

// Tasks is the task list page.
type Tasks struct {
	Rows  []TaskRow
	State string // filter
}

// TaskDetail is one task with its log tail.
type TaskDetail struct {
	Row     TaskRow
	LogTail string
	Command string
	Started string
	// Runs is the run history of the task's config, newest first (nil
	// when it has run once or has no config).
	Runs []TaskRow
	// Cost is the CPU cores the task is budgeted on its concierge
	// ("0.10"), what placement counts against the concierge's capacity.
	Cost string
}

// NodeRow is one cluster node.
type NodeRow struct {
	Name          string
	Role          string
	Alive         bool
	Draining      bool
	LastHeartbeat string
	Address       string
	Connections   int
	Streams       int
	BitrateIn     string
	BitrateOut    string
	// Cores is set for concierges, whose capacity is a CPU-core budget:
	// CostUsed is the cores their tasks are budgeted ("0.30"), Capacity
	// the cores registered, LoadPercent the share used.
	Cores       bool
	CostUsed    string
	Capacity    int
	LoadPercent int
	Held        []string // streams this origin holds; an edge's streams with their players
	Version     string
	// CPU, Memory and Uptime are what the node reports of its host ("" from
	// older nodes).
	CPU, Memory, Uptime string
	// CanDrain, CanResume and CanRemove offer the admin's actions: drain or
	// resume a concierge, forget a node that no longer reports in.
	CanDrain, CanResume, CanRemove bool
}

// NodeGroup is the nodes of one role.
type NodeGroup struct {
	Role  string
	Nodes []NodeRow
}

// PlayURL is one absolute play URL of a stream, by protocol.
type PlayURL struct {
	Proto string // RTMP, RTSP, HTTP-FLV, HLS
	URL   string
}

// Cluster is the cluster page.
type Cluster struct {
	Groups []NodeGroup
	CDN    *CDN // nil without CDN edges
}

// CDN is the cluster page's CDN card: the live CDN edges' load from their
// heartbeats and the edge count their egress calls for.
type CDN struct {
	Live     int
	Egress   string // all live edges together
	Capacity string // their registered egress capacity
	Desired  int    // portier_cdn_desired_edges
	Edges    []CDNEdgeRow
	Viewers  []HLSViewers // HLS viewers per stream, most watched first
}

// HLSViewers is one stream's HLS viewers, as the playlist rewriter
// estimates them from its viewers' playlist reloads.
type HLSViewers struct {
	Stream  string // app/name
	Viewers int
}

// CDNEdgeRow is one live CDN edge.
type CDNEdgeRow struct {
	Name       string
	Egress     string
	UsePercent int // egress of registered capacity
	HitPercent int
	Active     int
	Cache      string
}

// Dashboard is the start page.
type Dashboard struct {
	Totals     DashboardTotals
	Live       []StreamRow
	Attention  []TaskRow
	Silent     []NodeRow
	StreamsAll int64
	NodesAll   int
}

// UserRow is one user in the administration list.
type UserRow struct {
	ID       int64
	Username string
	Role     string
	Disabled bool
	Created  string
	IsSelf   bool
}

// Users is the user administration page.
type Users struct {
	Rows []UserRow
	Form NewUser
}

// NewUser is the create-user form.
type NewUser struct {
	Username string
	Role     string
	Errors   FieldErrors
}

// TokenRow is one API token.
type TokenRow struct {
	ID       int64
	Name     string
	Prefix   string
	Scopes   string
	Created  string
	LastUsed string
	Expires  string
	Revoked  bool
}

// Tokens is the API token page.
type Tokens struct {
	Rows     []TokenRow
	NewToken string // the clear token, shown once right after creation
	Form     NewToken
}

// NewToken is the create-token form.
type NewToken struct {
	Name        string
	Scopes      []string
	ExpiresDays string // "" never, else days from now
	Errors      FieldErrors
}

// AuditRow is one audit event.
type AuditRow struct {
	Time    string
	Actor   string
	Action  string
	Object  string
	Result  string
	Reason  string
	Node    string
	Addr    string
	Details string
}

// Audit is the audit log page.
type Audit struct {
	Rows         []AuditRow
	Actor        string
	Action       string
	Object       string
	Since, Until string // datetime-local values, UTC
	// Plays shows play authorisations; HiddenPlays is how many the
	// filters match while they are hidden.
	Plays       bool
	HiddenPlays int64
	Errors      FieldErrors
	Total       int64
	Offset      int
	PrevOffset  int // -1: no previous page
	NextOffset  int // -1: no next page
}

// Account is the signed-in user's own settings page.
type Account struct {
	Username string
	Role     string
	Language string
	Errors   FieldErrors
}

// ErrorPage explains a refused or failed request.
type ErrorPage struct {
	Status  int
	Heading string
	Message string
	ID      string // error id, also in the server log
}

// Reason translates a reason or error text built from catalogued parts
// (see i18n.Lang.Reason).
func (p Page) Reason(s string) string { return p.Lang.Reason(s) }
