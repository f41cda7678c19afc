package api

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
	"github.com/portier/portier/portier/recordings"
)

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
	base, ok := s.recordDir(c)
	if !ok {
		return
	}
	all, err := recordings.List(compile.RecordingDir(base, st.ID))
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

// recordDir is the control plane's record directory, or a 409 saying how
// to configure one.
func (s *Server) recordDir(c *gin.Context) (string, bool) {
	base := s.p.RecordDir
	if base == "" || !filepath.IsAbs(base) {
		s.fail(c, httperr.New(http.StatusConflict, httperr.CodeConflict, "", "no record directory is configured: start the control plane with --record-dir"))
		return "", false
	}
	return base, true
}

// recordingFile is the stream's recording :name (404 for anything else).
func (s *Server) recordingFile(c *gin.Context) (*models.Stream, string, bool) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return nil, "", false
	}
	base, ok := s.recordDir(c)
	if !ok {
		return nil, "", false
	}
	p, err := recordings.File(compile.RecordingDir(base, st.ID), c.Param("name"))
	if err != nil {
		s.fail(c, httperr.NotFound("recording"))
		return nil, "", false
	}
	return st, p, true
}

// apiGetRecording downloads one segment file (Range requests work).
func (s *Server) apiGetRecording(c *gin.Context) {
	if _, p, ok := s.recordingFile(c); ok {
		c.FileAttachment(p, filepath.Base(p))
	}
}

// apiDeleteRecording deletes one segment file, audited.
func (s *Server) apiDeleteRecording(c *gin.Context) {
	st, p, ok := s.recordingFile(c)
	if !ok {
		return
	}
	if err := s.core.DeleteRecording(c.Request.Context(), auth.Actor(c), st, filepath.Dir(p), filepath.Base(p)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = httperr.NotFound("recording")
		}
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
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
		"streams", "", 200, "list:Recording", []string{"limit", "offset"}},
		op{"GET", "/streams/{id}/recordings/{name}", "Download a recorded segment (Range requests work)", "streams", "", 200, "", nil},
		op{"DELETE", "/streams/{id}/recordings/{name}", "Delete a recorded segment", "streams", "", 204, "", nil})
}
