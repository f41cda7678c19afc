// Package recordings lists, opens and deletes the segment files record
// tasks write, for the REST API and the web UI.
package recordings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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

// Recording is one segment file.
type Recording struct {
	Name            string    `json:"name"`
	Format          string    `json:"format"`
	Size            int64     `json:"size"`
	StartTime       time.Time `json:"start_time"`
	ModifiedAt      time.Time `json:"modified_at"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// List reads dir and returns its segment files, oldest first.
// A missing directory is an empty list.
func List(dir string) ([]Recording, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return []Recording{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Recording, 0, len(ents))
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if !e.Type().IsRegular() || !recordingExts[ext] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed while listing
		}
		r := Recording{Name: e.Name(), Format: strings.TrimPrefix(ext, "."), Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}
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

// ErrBadName is a file name that is not one of a stream's segments.
var ErrBadName = errors.New("not a recording's file name")

// Path is the file of recording name in dir, after checking that name is
// a segment's (a plain file name with a recording's extension: no
// directories, no dot files).
func Path(dir, name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || !recordingExts[filepath.Ext(name)] {
		return "", fmt.Errorf("%q: %w", name, ErrBadName)
	}
	return filepath.Join(dir, name), nil
}

// File is the path of an existing recording name in dir: ErrBadName for a
// name that is not a segment's, os.ErrNotExist when there is no such file.
func File(dir, name string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("no record directory: %w", os.ErrNotExist)
	}
	p, err := Path(dir, name)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a file: %w", name, os.ErrNotExist)
	}
	return p, nil
}

// Delete removes recording name from dir (os.ErrNotExist if absent).
func Delete(dir, name string) error {
	p, err := Path(dir, name)
	if err != nil {
		return err
	}
	return os.Remove(p)
}
