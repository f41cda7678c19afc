package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/paging"
)

// The OpenAPI 3 document of /api/v1, written by hand as Go values. A test
// checks that it lists exactly the routes registered under /api/v1.

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func arr(items any) obj { return obj{"type": "array", "items": items} }

func props(required []string, p obj) obj {
	o := obj{"type": "object", "properties": p}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

var (
	tStr   = obj{"type": "string"}
	tInt   = obj{"type": "integer", "format": "int64"}
	tBool  = obj{"type": "boolean"}
	tNum   = obj{"type": "number"}
	tTime  = obj{"type": "string", "format": "date-time"}
	tNTime = obj{"type": "string", "format": "date-time", "nullable": true}
	tObj   = obj{"type": "object", "additionalProperties": true}
)

func listSchema(item string) obj {
	return props([]string{"items", "total", "limit", "offset"}, obj{
		"items": arr(ref(item)), "total": tInt, "limit": tInt, "offset": tInt, "next_offset": tInt,
	})
}

var openAPISchemas = obj{
	"Error": props([]string{"error"}, obj{"error": props([]string{"code", "message"}, obj{
		"code": tStr, "message": tStr, "field": tStr, "id": obj{"type": "string", "description": "also in the server log"},
	})}),
	"Application": props(nil, obj{"id": tInt, "name": tStr, "created_at": tTime}),
	"Stream": props([]string{"id", "name", "app", "live"}, obj{
		"id": tInt, "name": tStr, "app": tStr, "owner": tStr, "owner_id": tInt, "enabled": tBool, "allow_takeover": tBool,
		"hls_public": obj{"type": "boolean", "description": "HLS plays without a play token"},
		"live":       tBool, "publish_count": tInt, "last_publish_at": tNTime, "codec_info": tObj, "bitrate": tInt,
		"key":      obj{"type": "string", "description": "publish key: only on create, rotate-key and GET by the owner"},
		"key_hint": tStr,
		"ingest": props(nil, obj{"rtmp_url": tStr, "obs_server": tStr, "obs_stream_key": tStr,
			"ffmpeg": obj{"type": "string", "description": "a ready-to-run ffmpeg command"}}),
		"play": props(nil, obj{"rtmp": tStr, "flv": tStr,
			"rtsp": obj{"type": "string", "description": "RTSP play URL, when the relays serve RTSP"},
			"hls":  obj{"type": "string", "description": "viewer URL of the master playlist (GET of one stream with an enabled HLS task config; carries a play token unless hls_public)"}}),
		"origins":    arr(props(nil, obj{"node": tStr, "since": tTime})),
		"stats":      ref("StreamStats"),
		"created_at": tTime, "updated_at": tTime,
	}),
	"StreamStats": obj{"type": "object", "nullable": true,
		"description": "live statistics reported by the relays (null while the stream is offline): codecs and bitrate from the origin holding the publish; " +
			"viewers are the players of every relay minus one per edge holding the stream (its upstream pull or forwarded publish); uptime since the earliest current origin took the publish",
		"properties": obj{"video_codec": tStr, "width": tInt, "height": tInt, "fps": obj{"type": "number"},
			"audio_codec": tStr, "sample_rate": tInt, "channels": tInt,
			"bitrate":            obj{"type": "integer", "format": "int64", "description": "bits per second into the origin"},
			"viewers":            tInt,
			"uptime_seconds":     tInt,
			"publisher_addr":     obj{"type": "string", "description": "the publisher's IP:port as the origin saw it (an edge's address when the publish came through one)"},
			"publisher_protocol": obj{"type": "string", "description": "rtmp, rtsp, rtsp-pull or edge-pull"},
			"encoder":            obj{"type": "string", "description": "the publisher's software as it names itself: RTMP onMetaData encoder (ffmpeg: Lavf…, OBS: obs-output module …), else the RTMP connect's flashVer; RTSP User-Agent"},
			"gop_seconds":        obj{"type": "number", "description": "the last complete GOP the origin received: keyframe to keyframe, from their timestamps"},
			"gop_frames":         obj{"type": "integer", "description": "the frames of that GOP"}}},
	"Kick": props([]string{"stream_id", "ended"}, obj{"stream_id": tInt,
		"ended":   arr(props(nil, obj{"node": obj{"type": "string", "description": "the relay told to end the publish"}, "publish_id": tInt})),
		"message": tStr}),
	"StreamCreate": props([]string{"name"}, obj{"name": obj{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
		"app": obj{"type": "string", "default": "live"}}),
	"StreamPatch": props(nil, obj{"name": tStr, "enabled": tBool, "allow_takeover": tBool, "hls_public": tBool}),
	"Rendition": props(nil, obj{"name": obj{"type": "string", "description": "default: the preset's name"},
		"preset": obj{"type": "string", "enum": compile.PresetNames, "description": "fills the fields left out; stored expanded"},
		"kind":   obj{"type": "string", "enum": []string{compile.KindVideo, compile.KindCopy, compile.KindAudio}, "default": compile.KindVideo},
		"width":  tInt, "height": tInt, "fps": obj{"type": "integer", "description": "0: the source's frame rate"},
		"video_bitrate_kbps": tInt, "audio_bitrate_kbps": tInt}),
	"TaskConfig": props([]string{"type", "name"}, obj{
		"id": tInt, "stream_id": tInt, "type": obj{"type": "string", "enum": []string{"restream", "record", "pull", "hls"}},
		"name": tStr, "enabled": tBool, "version": tInt, "created_at": tTime, "updated_at": tTime,
		"target":  obj{"type": "string", "description": "restream: rtmp://, rtmps:// or srt:// URL"},
		"key":     obj{"type": "string", "description": "restream: target stream key (write-only; key_set/key_hint are shown); for a platform's ingest host it must have the platform's key shape (GET /presets)"},
		"format":  obj{"type": "string", "description": "restream: flv|mpegts; record: mp4|flv|ts"},
		"key_set": tBool, "key_hint": tStr,
		"segment_seconds": tInt,
		"source":          obj{"type": "string", "description": "pull: rtmp(s)://, rtsp(s)://, srt:// or http(s)://….m3u8"},
		"renditions":      arr(ref("Rendition")),
	}),
	"RestreamPreset": props([]string{"id", "name", "target", "hosts", "help"}, obj{
		"id": tStr, "name": tStr,
		"target":      obj{"type": "string", "description": "the ingest URL: a restream config's target"},
		"key_shape":   obj{"type": "string", "description": "what the platform's stream keys look like, e.g. xxxx-xxxx-xxxx-xxxx-xxxx (absent: not checked)"},
		"key_pattern": obj{"type": "string", "description": "the regular expression a key for these hosts must match on save (absent: none); a mismatch is a 400 on the field key"},
		"hosts":       obj{"type": "array", "items": tStr, "description": "host names (and their subdomains) whose keys are checked"},
		"help":        obj{"type": "string", "description": "where the key is found (English)"},
	}),
	"LadderPreset": props([]string{"id", "name", "renditions", "cost"}, obj{
		"id": tStr, "name": tStr,
		"renditions": obj{"type": "array", "items": ref("Rendition"), "description": "the renditions of an hls config, expanded"},
		"cost":       obj{"type": "number", "description": "placement cost in CPU cores (one per 640x360 30 fps of encoding work)"},
	}),
	"Presets": props([]string{"restream_targets", "hls_ladders"}, obj{
		"restream_targets": arr(ref("RestreamPreset")), "hls_ladders": arr(ref("LadderPreset")),
	}),
	"Task": props([]string{"id", "type", "state", "node"}, obj{
		"id": tInt, "config_id": tInt, "stream_id": tInt, "type": tStr,
		"state":         obj{"type": "string", "enum": []string{"pending", "assigned", "starting", "running", "backoff", "failed", "stopping", "stopped"}},
		"desired_state": tStr, "node": tStr, "epoch": tInt, "restarts": tInt, "last_exit_code": tInt,
		"last_error": tStr, "log_tail": tStr,
		"progress": obj{"type": "object", "description": "a running ffmpeg task's latest progress (absent otherwise)", "properties": obj{
			"frame": tInt, "fps": tNum, "bitrate": tInt, "total_size": tInt, "out_time_ms": tInt, "speed": tNum,
			"drop_frames": tInt, "dup_frames": tInt, "uptime_ms": tInt, "stalled": tBool}},
		"started_at": tNTime, "lease_until": tNTime, "reason": tStr,
		"command": tStr, "cost": obj{"type": "number", "description": "CPU cores the task is budgeted on its concierge (copying tasks " + taskcost.Format(taskcost.Copy) + ", an HLS ladder its encoding work)"}, "config_version": tInt, "created_at": tTime, "updated_at": tTime,
	}),
	"Node": props(nil, obj{"name": tStr, "role": tStr, "rtmp_address": tStr, "http_address": tStr,
		"capacity": obj{"type": "integer", "description": "concierges: CPU cores (the task-cost budget, --capacity); CDN edges: egress in Mbit/s"},
		"labels":   tObj, "load": obj{"type": "object", "description": "the last heartbeat's load; a concierge's cost_used is in CPU cores, as its capacity"}, "version": tStr, "last_heartbeat": tNTime, "registered_at": tTime,
		"draining": tBool, "alive": tBool, "state": obj{"type": "string", "enum": []string{"alive", "draining", "dead"}}}),
	"AuditEvent": props(nil, obj{"id": tInt, "time": tTime, "actor": tStr, "action": tStr, "object": tStr,
		"result": tStr, "reason": tStr, "node": tStr, "addr": tStr, "details": tObj}),
	"User": props(nil, obj{"id": tInt, "username": tStr, "role": obj{"type": "string", "enum": []string{"admin", "operator", "viewer"}},
		"disabled": tBool, "language": tStr, "created_at": tTime, "updated_at": tTime}),
	"UserCreate": props([]string{"username", "password", "role"}, obj{"username": tStr, "password": tStr, "role": tStr, "language": tStr}),
	"UserPatch":  props(nil, obj{"role": tStr, "disabled": tBool, "language": tStr, "password": tStr}),
	"Webhook": props([]string{"id", "url", "events", "enabled"}, obj{
		"id": tInt, "url": tStr, "application_id": obj{"type": "integer", "format": "int64", "nullable": true, "description": "null: global (every application's events)"},
		"application": ref("Application"), "events": arr(obj{"type": "string", "enum": models.WebhookEventTypes}),
		"enabled": tBool, "description": tStr, "created_at": tTime, "updated_at": tTime,
		"secret": obj{"type": "string", "description": "the HMAC-SHA256 signing secret: only in the answer to POST"},
	}),
	"WebhookInput": props(nil, obj{"url": tStr, "application_id": obj{"type": "integer", "format": "int64", "nullable": true},
		"events":  obj{"type": "array", "items": obj{"type": "string", "enum": models.WebhookEventTypes}, "description": "empty: every event"},
		"enabled": tBool, "description": tStr, "secret": obj{"type": "string", "description": "16 to 256 characters; empty: one is made"}}),
	"WebhookDelivery": props(nil, obj{"id": tInt, "endpoint_id": tInt, "event_id": tStr, "event": tStr, "attempt": tInt,
		"status_code": obj{"type": "integer", "description": "0: no HTTP answer (see error)"}, "error": tStr, "duration_ms": tInt, "created_at": tTime}),
	"Me": props(nil, obj{"id": tInt, "username": tStr, "role": tStr, "via": tStr, "scopes": arr(tStr)}),
	"Token": props(nil, obj{"id": tInt, "user_id": tInt, "name": tStr, "prefix": tStr, "scopes": arr(tStr),
		"expires_at": tNTime, "revoked_at": tNTime, "last_used_at": tNTime, "created_at": tTime,
		"token": obj{"type": "string", "description": "the secret, only in the answer to POST"}}),
	"TokenCreate": props(nil, obj{"name": tStr, "scopes": arr(obj{"type": "string", "enum": []string{"read", "write", "admin"}}),
		"expires_at": tNTime}),
	"NameOnly": props([]string{"name"}, obj{"name": tStr}),
}

// op describes one operation.
type op struct {
	method, path, summary, tag string
	body                       string // request schema, "" for none
	status                     int
	resp                       string // response schema ("" for no body); "list:X" for a page of X
	query                      []string
}

var openAPIOps = []op{
	{"GET", "/me", "The caller: user, scopes and how they authenticated", "accounts", "", 200, "Me", nil},
	{"GET", "/applications", "List applications", "applications", "", 200, "list:Application", nil},
	{"POST", "/applications", "Create an application (admin)", "applications", "NameOnly", 201, "Application", nil},
	{"DELETE", "/applications/{id}", "Delete an application without streams (admin)", "applications", "", 204, "", nil},
	{"GET", "/streams", "List streams (operators: their own)", "streams", "", 200, "list:Stream", []string{"limit", "offset", "live", "app"}},
	{"POST", "/streams", "Create a stream; the answer has its key and ingest URLs", "streams", "StreamCreate", 201, "Stream", nil},
	{"GET", "/streams/{id}", "Show a stream (the key only to its owner)", "streams", "", 200, "Stream", nil},
	{"PATCH", "/streams/{id}", "Rename, enable/disable, allow takeover", "streams", "StreamPatch", 200, "Stream", nil},
	{"DELETE", "/streams/{id}", "Delete a stream with its task configs and tasks", "streams", "", 204, "", nil},
	{"POST", "/streams/{id}/rotate-key", "Give the stream a new publish key", "streams", "", 200, "Stream", nil},
	{"POST", "/streams/{id}/kick", "End the stream's current publish now (the relays end it with their next heartbeat); not a ban: the encoder may publish again; 409 when not live", "streams", "", 202, "Kick", nil},
	{"GET", "/streams/{id}/task-configs", "List a stream's task configs", "task-configs", "", 200, "list:TaskConfig", nil},
	{"POST", "/streams/{id}/task-configs", "Add a task config (restream, record, pull, hls)", "task-configs", "TaskConfig", 201, "TaskConfig", nil},
	{"GET", "/streams/{id}/task-configs/{cid}", "Show a task config", "task-configs", "", 200, "TaskConfig", nil},
	{"PATCH", "/streams/{id}/task-configs/{cid}", "Change a task config (given fields are merged)", "task-configs", "TaskConfig", 200, "TaskConfig", nil},
	{"DELETE", "/streams/{id}/task-configs/{cid}", "Delete a task config (stops its task)", "task-configs", "", 204, "", nil},
	{"GET", "/presets", "Restream targets of the big platforms (ingest URL, key shape) and HLS ladders the forms offer", "task-configs", "", 200, "Presets", nil},
	{"GET", "/tasks", "List tasks", "tasks", "", 200, "list:Task", []string{"stream", "config", "latest", "state", "node", "limit", "offset"}},
	{"GET", "/tasks/{id}", "Show a task", "tasks", "", 200, "Task", nil},
	{"POST", "/tasks/{id}/restart", "Restart a task (new epoch, rescheduled)", "tasks", "", 200, "Task", nil},
	{"GET", "/nodes", "List nodes with liveness", "nodes", "", 200, "list:Node", []string{"role"}},
	{"POST", "/nodes/{name}/drain", "Drain a concierge: no new tasks, its tasks move elsewhere; answers {\"tasks\": [ids handed back]} (admin)", "nodes", "", 200, "", nil},
	{"POST", "/nodes/{name}/resume", "End a concierge's drain (admin)", "nodes", "", 204, "", nil},
	{"DELETE", "/nodes/{name}", "Forget a node that no longer reports in (409 while it does) (admin)", "nodes", "", 204, "", nil},
	{"GET", "/audit", "List audit events (non-admins: their own)", "audit", "", 200, "list:AuditEvent", []string{"action", "actor", "object", "since", "until", "limit", "offset"}},
	{"GET", "/users", "List users (admin)", "accounts", "", 200, "list:User", []string{"limit", "offset"}},
	{"POST", "/users", "Create a user (admin)", "accounts", "UserCreate", 201, "User", nil},
	{"GET", "/users/{id}", "Show a user (admin)", "accounts", "", 200, "User", nil},
	{"PATCH", "/users/{id}", "Change role, password, language or disable (admin)", "accounts", "UserPatch", 200, "User", nil},
	{"DELETE", "/users/{id}", "Delete a user with their tokens and sessions; 409 while they own streams (admin)", "accounts", "", 204, "", nil},
	{"GET", "/webhooks", "List webhook endpoints (admin)", "webhooks", "", 200, "list:Webhook", nil},
	{"POST", "/webhooks", "Create a webhook endpoint; its signing secret is shown only here (admin)", "webhooks", "WebhookInput", 201, "Webhook", nil},
	{"GET", "/webhooks/{id}", "Show a webhook endpoint (admin)", "webhooks", "", 200, "Webhook", nil},
	{"PATCH", "/webhooks/{id}", "Change a webhook endpoint (given fields are merged; a new secret is not echoed) (admin)", "webhooks", "WebhookInput", 200, "Webhook", nil},
	{"DELETE", "/webhooks/{id}", "Delete a webhook endpoint with its delivery log (admin)", "webhooks", "", 204, "", nil},
	{"GET", "/webhooks/{id}/deliveries", "List an endpoint's delivery attempts, newest first (admin)", "webhooks", "", 200, "list:WebhookDelivery", []string{"limit"}},
	{"POST", "/webhooks/{id}/test", "Deliver a webhook.test event now and answer the attempt (admin)", "webhooks", "", 200, "WebhookDelivery", nil},
	{"GET", "/tokens", "List the caller's API tokens (no secrets)", "accounts", "", 200, "list:Token", nil},
	{"POST", "/tokens", "Create an API token; the secret is shown only here", "accounts", "TokenCreate", 201, "Token", nil},
	{"DELETE", "/tokens/{id}", "Revoke one of the caller's API tokens", "accounts", "", 204, "", nil},
	{"GET", "/openapi.json", "This document", "meta", "", 200, "", nil},
}

var queryDocs = map[string]obj{
	"limit":  {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
	"offset": {"type": "integer", "minimum": 0, "maximum": paging.MaxOffset, "default": 0},
	"live":   {"type": "boolean"},
	"state":  {"type": "string"},
	"since":  {"type": "string", "format": "date-time"},
	"until":  {"type": "string", "format": "date-time"},
	"stream": {"type": "integer"},
	"config": {"type": "integer", "description": "only the runs of this task config (its run history)"},
	"latest": {"type": "boolean", "description": "only the newest task of each task config (one row per config)"},
}

// conflictDocs are the 409 answers of operations without a body.
var conflictDocs = map[string]string{
	"POST /streams/{id}/kick": "the stream has no publisher to kick",
}

func errResp(desc string) obj {
	return obj{"description": desc, "content": obj{"application/json": obj{"schema": ref("Error")}}}
}

func buildOpenAPI() obj {
	paths := obj{}
	for _, o := range openAPIOps {
		item, _ := paths[o.path].(obj)
		if item == nil {
			item = obj{}
			paths[o.path] = item
		}
		var params []any
		for _, seg := range strings.Split(o.path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, obj{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": tInt})
			}
		}
		for _, q := range o.query {
			sch, ok := queryDocs[q]
			if !ok {
				sch = tStr
			}
			params = append(params, obj{"name": q, "in": "query", "schema": sch})
		}
		resps := obj{}
		ok := obj{"description": http.StatusText(o.status)}
		if o.resp != "" {
			sch := ref(o.resp)
			if name, isList := strings.CutPrefix(o.resp, "list:"); isList {
				sch = listSchema(name)
			}
			ok["content"] = obj{"application/json": obj{"schema": sch}}
		}
		resps[itoa(o.status)] = ok
		if o.path != "/openapi.json" {
			resps["400"] = errResp("invalid input: the message and field say what to fix")
			resps["401"] = errResp("missing, unknown, expired or revoked token")
			resps["403"] = errResp("role or token scope does not allow this")
			resps["404"] = errResp("not found (also for other operators' streams)")
			if d, ok := conflictDocs[o.method+" "+o.path]; ok {
				resps["409"] = errResp(d)
			}
			if o.body != "" {
				resps["409"] = errResp("duplicate name")
				resps["413"] = errResp("body over 1 MiB")
			}
		}
		operation := obj{"summary": o.summary, "tags": []string{o.tag}, "responses": resps,
			"operationId": strings.ToLower(o.method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(o.path)}
		if params != nil {
			operation["parameters"] = params
		}
		if o.body != "" {
			operation["requestBody"] = obj{"required": true, "content": obj{"application/json": obj{"schema": ref(o.body)}}}
		}
		if o.path == "/openapi.json" {
			operation["security"] = []any{}
		}
		item[strings.ToLower(o.method)] = operation
	}
	return obj{
		"openapi": "3.0.3",
		"info": obj{"title": "Portier control plane API", "version": "1",
			"description": "Streams, task configs, tasks, nodes, audit events and accounts. JSON in and out; bodies up to 1 MiB; unknown fields are errors."},
		"servers":    []any{obj{"url": "/api/v1"}},
		"security":   []any{obj{"bearer": []string{}}},
		"paths":      paths,
		"components": obj{"schemas": openAPISchemas, "securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer", "description": "an API token (ptk_…) from `portier token add` or POST /tokens"}}},
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

var (
	openAPIOnce sync.Once
	openAPIJSON []byte
)

func (s *Server) serveOpenAPI(c *gin.Context) {
	openAPIOnce.Do(func() {
		b, err := json.MarshalIndent(buildOpenAPI(), "", "  ")
		if err != nil {
			panic("openapi: " + err.Error()) // static data: a build defect
		}
		openAPIJSON = b
	})
	c.Data(http.StatusOK, "application/json", openAPIJSON)
}
