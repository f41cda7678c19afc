package hlscheck

import (
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Request is one write a Recorder received.
type Request struct {
	Method string // PUT or DELETE
	Path   string
	Auth   string // the Authorization header
	Hash   [32]byte
	Size   int
	At     time.Time
	Body   []byte // the bytes of a playlist (.m3u8) PUT; nil for segments
}

// Recorder is an HTTP server handler that stands in for the HLS origin: it
// stores what is PUT, forgets what is DELETEd, serves GET from its store,
// records every write, and passes every media playlist PUT to its Checker.
type Recorder struct {
	Checker *Checker

	mu    sync.Mutex
	reqs  []Request
	files map[string][]byte
	// reused: segment paths PUT again with other bytes.
	reused []string
	hashes map[string][32]byte
}

// NewRecorder returns a Recorder with a new Checker.
func NewRecorder() *Recorder {
	return &Recorder{Checker: NewChecker(), files: map[string][]byte{}, hashes: map[string][32]byte{}}
}

// ServeHTTP implements http.Handler.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, q *http.Request) {
	switch q.Method {
	case http.MethodPut, http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(q.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := sha256.Sum256(body)
		r.mu.Lock()
		playlist := strings.HasSuffix(q.URL.Path, ".m3u8")
		req := Request{Method: http.MethodPut, Path: q.URL.Path, Auth: q.Header.Get("Authorization"), Hash: h, Size: len(body), At: time.Now()}
		if playlist {
			req.Body = body
		}
		r.reqs = append(r.reqs, req)
		r.files[q.URL.Path] = body
		if old, ok := r.hashes[q.URL.Path]; ok && old != h && !playlist {
			r.reused = append(r.reused, q.URL.Path)
		}
		r.hashes[q.URL.Path] = h
		r.mu.Unlock()
		if playlist && !strings.HasSuffix(q.URL.Path, "/master.m3u8") {
			r.Checker.Media(q.URL.Path, body)
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		r.mu.Lock()
		r.reqs = append(r.reqs, Request{Method: http.MethodDelete, Path: q.URL.Path, Auth: q.Header.Get("Authorization"), At: time.Now()})
		delete(r.files, q.URL.Path)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		b, err := r.Fetch(q.URL.Path)
		if err != nil {
			http.NotFound(w, q)
			return
		}
		_, _ = w.Write(b)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// Fetch returns the stored bytes of path (a Fetch for Checker.Poll).
func (r *Recorder) Fetch(path string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.files[path]
	if !ok {
		return nil, errors.New("not found: " + path)
	}
	return b, nil
}

// Requests returns every write so far, in order.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Reused returns the non-playlist paths that were PUT twice with different bytes.
func (r *Recorder) Reused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reused...)
}
