package api

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
)

// Recordings are the segment files record tasks write under
// <record dir>/stream.<id>/ (compile.RecordingDir: by the stream's id, not
// its name, so a new stream that reuses a deleted stream's name never lists
// the old one's files), named by their start
// time (%Y%m%d-%H%M%S in the recorder's local time zone). The control plane
// lists what it sees in its own --record-dir: in `portier run` that is the
// directory the embedded concierge writes to; in a cluster the record
// directory must be shared storage mounted at the same path on the workers
// and the control plane, or the list holds only what this host can see.
//
// Durations are cheap estimates, not probes: a segment lasts until the
// next one starts; the newest one until its last write.

// recordingExts are the extensions record tasks write (mp4, flv, ts).
var recordingExts = map[string]bool{".mp4": true, ".flv": true, ".ts": true}

// recordingNameLayout is the time layout of a segment's file name.
const recordingNameLayout = "20060102-150405"

// apiRecording is one segment file in the API.
type apiRecording struct {
	Name            string    `json:"name"`
	Format          string    `json:"format"`
	Size            int64     `json:"size"`
	StartTime       time.Time `json:"start_time"`
	ModifiedAt      time.Time `json:"modified_at"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// listRecordings reads dir and returns its segment files, oldest first.
// A missing directory is an empty list.
func listRecordings(dir string) ([]apiRecording, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return []apiRecording{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]apiRecording, 0, len(ents))
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if !e.Type().IsRegular() || !recordingExts[ext] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed while listing
		}
		r := apiRecording{Name: e.Name(), Format: strings.TrimPrefix(ext, "."), Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}
		if st, err := time.ParseInLocation(recordingNameLayout, strings.TrimSuffix(e.Name(), ext), time.Local); err == nil {
			r.StartTime = st.UTC()
		} else {
			r.StartTime = r.ModifiedAt
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartTime.Equal(out[j].StartTime) {
			return out[i].StartTime.Before(out[j].StartTime)
		}
		return out[i].Name < out[j].Name
	})
	for i := range out {
		end := out[i].ModifiedAt
		if i+1 < len(out) && out[i+1].StartTime.After(out[i].StartTime) {
			end = out[i+1].StartTime
		}
		if d := end.Sub(out[i].StartTime).Seconds(); d > 0 {
			out[i].DurationSeconds = float64(int64(d*10)) / 10
		}
	}
	return out, nil
}

// apiListRecordings answers GET /streams/{id}/recordings: the stream's
// segment files, newest first, paged.
func (s *Server) apiListRecordings(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	pg, err := paging.Params(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.p.RecordDir
	if base == "" || !filepath.IsAbs(base) {
		s.fail(c, httperr.New(http.StatusConflict, httperr.CodeConflict, "", "no record directory is configured: start the control plane with --record-dir"))
		return
	}
	all, err := listRecordings(compile.RecordingDir(base, st.ID))
	if err != nil {
		s.log.Error("list recordings", "err", err, "stream", st.ID)
		s.fail(c, httperr.New(http.StatusInternalServerError, "internal", "", "cannot read the record directory"))
		return
	}
	// Newest first.
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	items := all[min(pg.Offset, len(all)):min(pg.Offset+pg.Limit, len(all))]
	c.JSON(http.StatusOK, listOf(items, int64(len(all)), pg, len(items)))
}

func init() {
	openAPISchemas["Recording"] = props(nil, obj{
		"name":       obj{"type": "string", "description": "file name: the segment's start time, YYYYMMDD-HHMMSS.ext"},
		"format":     obj{"type": "string", "enum": []string{"mp4", "flv", "ts"}},
		"size":       obj{"type": "integer", "format": "int64", "description": "bytes"},
		"start_time": tTime, "modified_at": tTime,
		"duration_seconds": obj{"type": "number", "description": "estimate: until the next segment starts, or the last write for the newest"},
	})
	openAPIOps = append(openAPIOps, op{"GET", "/streams/{id}/recordings",
		"List a stream's recorded segments, newest first (files in the control plane's record directory)",
		"streams", "", 200, "list:Recording", []string{"limit", "offset"}})
}
