package concierge

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/wire"
)

// Recordings: a record task's ffmpeg runs its segment muxer with a
// segment list (withSegmentList): each time the muxer closes a file (a
// segment ended, or ffmpeg stopped and wrote its trailer) it appends a
// CSV line "PATH,START,END" to DATA/segments/PROGRAM.csv, START and END
// being the media times of the file's first and last packets. Each
// reconcile pass reads the lines added since the last pass (scanRecordings),
// measures each file and queues it; flushRecordings reports the queue to
// the control plane (wire.RecordingsReport), which announces each file
// once (webhook recording.finished), and sends it again until answered.
// A list is deleted once its program is gone and all its files are
// answered; a list left by a concierge that stopped before that is read
// again at the next start (the control plane drops what it announced
// already). A file that ffmpeg could not finish (it was killed) has no
// line and is not announced.

// segmentDir is where the segment lists are written.
func (c *Concierge) segmentDir() string { return filepath.Join(c.p.DataDir, "segments") }

// segmentList is the list file of program prog.
func (c *Concierge) segmentList(prog string) string {
	return filepath.Join(c.segmentDir(), prog+".csv")
}

// withSegmentList returns the arguments of a record task (a segment
// muxer writing to its last argument) with a CSV segment list at list,
// whose lines name each file by its full path.
func withSegmentList(taskType, list string, args []string) []string {
	if taskType != "record" || len(args) < 2 || !slices.Contains(args, "segment") || slices.Contains(args, "-segment_list") {
		return args
	}
	out := args[len(args)-1]
	opts := []string{"-segment_list", list, "-segment_list_type", "csv",
		"-segment_list_entry_prefix", filepath.Dir(out) + string(filepath.Separator)}
	return append(append(slices.Clone(args[:len(args)-1]), opts...), out)
}

// recordingNameLayout is the time in a record file's name (the record
// task's strftime pattern %Y%m%d-%H%M%S, in the recorder's time zone).
const recordingNameLayout = "20060102-150405"

// maxPendingRecordings bounds the recordings waiting to be reported
// while the control plane is unreachable; beyond it the oldest are dropped.
const maxPendingRecordings = 10000

// segList is the concierge's reading of one segment list.
type segList struct {
	taskID, epoch int64
	off           int64 // bytes read and parsed
	unanswered    int   // recordings read from it and not yet answered
	// held is the newest line's file, held back while the muxer may be
	// writing it again: a segment that started in the same second as the
	// one before gets the same name (the names have a second's
	// precision), and the muxer overwrites the file.
	held *segEntry
	// dir and ext are where and what the task records (from its
	// arguments; for a list left by an earlier run, from its lines), and
	// started when its program was made: they find the file that the
	// muxer did not finish (orphans).
	dir, ext   string
	started    time.Time
	last       string // the newest file named by a line
	orphansRun bool
}

// segEntry is one line of a segment list.
type segEntry struct {
	path     string
	duration float64
}

// pendingRecording is a closed file waiting for the control plane.
type pendingRecording struct {
	rec  wire.Recording
	prog string
}

// parseProg parses a program name made by progName.
func parseProg(name string) (id, epoch int64, ok bool) {
	rest, found := strings.CutPrefix(name, progPrefix)
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-e")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseInt(a, 10, 64)
	epoch, err2 := strconv.ParseInt(b, 10, 64)
	return id, epoch, err1 == nil && err2 == nil && id > 0
}

// scanRecordings reads what the segment lists gained since the last pass
// and deletes the lists that are done: their program is not loaded in
// supervisord (progs: its ffmpeg has exited), and every file read from
// them was answered. Reconcile goroutine only, between the pass's List of
// the programs and any program it adds: a program not in progs has no
// ffmpeg writing its list, and a list is never deleted after a new ffmpeg
// of the same program opened it.
func (c *Concierge) scanRecordings(progs map[string]supervisor.ProcessInfo) {
	ents, err := os.ReadDir(c.segmentDir())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("read segment lists", "err", err)
		}
		return
	}
	onDisk := map[string]bool{}
	for _, e := range ents {
		prog, isCSV := strings.CutSuffix(e.Name(), ".csv")
		if !isCSV || !e.Type().IsRegular() {
			continue
		}
		onDisk[prog] = true
		l := c.lists[prog]
		if l == nil {
			id, epoch, ok := parseProg(prog)
			if !ok {
				continue
			}
			l = &segList{taskID: id, epoch: epoch}
			c.lists[prog] = l
		}
		_, loaded := progs[prog]
		if err := c.readSegmentList(prog, l); err != nil {
			c.log.Warn("read segment list", "program", prog, "err", err)
			continue
		}
		c.releaseHeld(prog, l, loaded)
		if !loaded && !l.orphansRun {
			c.queueOrphans(prog, l)
		}
		if !loaded && l.unanswered == 0 {
			if err := os.Remove(c.segmentList(prog)); err != nil && !errors.Is(err, os.ErrNotExist) {
				c.log.Warn("remove segment list", "program", prog, "err", err)
			}
			delete(c.lists, prog)
		}
	}
	// Lists whose ffmpeg never opened them (it failed first).
	for prog, l := range c.lists {
		_, loaded := progs[prog]
		if !onDisk[prog] && !loaded && l.unanswered == 0 {
			delete(c.lists, prog)
		}
	}
}

// readSegmentList queues the files of the complete lines added to prog's
// list since l.off. A list shorter than l.off was written anew (its
// program was started again): it is read from its start.
func (c *Concierge) readSegmentList(prog string, l *segList) error {
	f, err := os.Open(c.segmentList(prog))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < l.off {
		l.off = 0
	}
	if fi.Size() == l.off {
		return nil
	}
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(f, fi.Size()-l.off))
	if err != nil {
		return err
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil // a line being written
	}
	l.off += int64(end + 1)
	r := csv.NewReader(bytes.NewReader(b[:end+1]))
	r.FieldsPerRecord = 3
	for {
		fields, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.log.Warn("segment list: line skipped", "program", prog, "err", err)
			continue
		}
		start, err1 := strconv.ParseFloat(fields[1], 64)
		end, err2 := strconv.ParseFloat(fields[2], 64)
		if err1 != nil || err2 != nil {
			c.log.Warn("segment list: line skipped", "program", prog, "line", fields)
			continue
		}
		e := &segEntry{path: fields[0], duration: max(end-start, 0)}
		if l.held != nil {
			if l.held.path == e.path {
				c.log.Warn("record segment overwritten by the next one, which started in the same second", "program", prog, "file", filepath.Base(e.path))
			} else {
				c.queueClosed(prog, l, *l.held)
			}
		}
		l.held = e
		l.last = filepath.Base(e.path)
		if l.dir == "" {
			l.dir, l.ext = filepath.Dir(e.path), filepath.Ext(e.path)
		}
	}
	return nil
}

// releaseHeld queues l's held file once the muxer is done with it: its
// program is gone, or a newer file is being written.
func (c *Concierge) releaseHeld(prog string, l *segList, loaded bool) {
	if l.held == nil {
		return
	}
	if loaded {
		if newest, _ := newestFile(filepath.Dir(l.held.path), filepath.Ext(l.held.path)); newest == filepath.Base(l.held.path) {
			return
		}
	}
	c.queueClosed(prog, l, *l.held)
	l.held = nil
}

// newestFile is the newest (by name: they start with their start time)
// file with extension ext in dir, and the names of the files there.
func newestFile(dir, ext string) (string, []string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil
	}
	newest := ""
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || filepath.Ext(n) != ext || strings.HasPrefix(n, ".") {
			continue
		}
		names = append(names, n)
		if n > newest {
			newest = n
		}
	}
	return newest, names
}

// queueClosed measures e's file and queues it.
func (c *Concierge) queueClosed(prog string, l *segList, e segEntry) {
	rec, err := closedFile(e.path, e.duration)
	if err != nil {
		c.log.Warn("segment list: file skipped", "program", prog, "err", err)
		return
	}
	rec.TaskID, rec.Epoch = l.taskID, l.epoch
	c.queueRecording(pendingRecording{rec: rec, prog: prog})
}

// queueOrphans queues the files of a finished program that its list does
// not name: the one being written when ffmpeg was stopped without
// finishing it (a second SIGTERM interrupts a recorder blocked on its
// input before it writes its trailer and list line) or was killed. They
// are the files newer than the list's last one (or, with no line, written
// since the program was made); ffprobe measures them. Such a file that
// is empty (the muxer opened it at its last cut and was stopped before it
// flushed a byte) is removed: it holds no recording.
func (c *Concierge) queueOrphans(prog string, l *segList) {
	l.orphansRun = true
	if l.dir == "" || (l.last == "" && l.started.IsZero()) {
		return
	}
	_, names := newestFile(l.dir, l.ext)
	for _, n := range names {
		if n <= l.last {
			continue
		}
		p := filepath.Join(l.dir, n)
		fi, err := os.Stat(p)
		if err != nil || (!l.started.IsZero() && fi.ModTime().Before(l.started)) {
			continue
		}
		if fi.Size() == 0 {
			// The segment the muxer opened after its last cut and was
			// stopped before it flushed anything into: no recording.
			if err := os.Remove(p); err == nil {
				c.log.Info("empty record file removed: the recorder stopped before writing into it", "program", prog, "file", n)
			}
			continue
		}
		d := c.probeDuration(p)
		if d <= 0 {
			if st, err := time.ParseInLocation(recordingNameLayout, strings.TrimSuffix(n, l.ext), time.Local); err == nil {
				d = max(fi.ModTime().Sub(st).Seconds(), 0)
			}
		}
		c.log.Info("record file not finished by its muxer: announced as it is", "program", prog, "file", n, "duration", d)
		c.queueClosed(prog, l, segEntry{path: p, duration: d})
	}
}

// probeDuration is the duration of a media file as ffprobe reads it (0
// when it cannot).
func (c *Concierge) probeDuration(path string) float64 {
	probe := filepath.Join(filepath.Dir(c.ffmp), "ffprobe")
	if _, err := os.Stat(probe); err != nil {
		if probe, err = exec.LookPath("ffprobe"); err != nil {
			return 0
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, probe, "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		return 0
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// closedFile measures the file at path, closed after duration seconds
// of media.
func closedFile(path string, duration float64) (wire.Recording, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return wire.Recording{}, err // removed since it was closed
	}
	name := filepath.Base(path)
	rec := wire.Recording{File: name, Size: fi.Size(), DurationSeconds: duration}
	if t, err := time.ParseInLocation(recordingNameLayout, strings.TrimSuffix(name, filepath.Ext(name)), time.Local); err == nil {
		rec.StartTime = t.UTC()
	} else {
		rec.StartTime = fi.ModTime().Add(-time.Duration(duration * float64(time.Second))).UTC()
	}
	return rec, nil
}

// queueRecording queues p for the control plane, dropping the oldest
// recording when maxPendingRecordings wait already.
func (c *Concierge) queueRecording(p pendingRecording) {
	if len(c.recs) >= maxPendingRecordings {
		c.answered(c.recs[0])
		c.log.Warn("too many recordings waiting for the control plane: the oldest is not announced", "file", c.recs[0].rec.File)
		c.recs = c.recs[1:]
	}
	if l := c.lists[p.prog]; l != nil {
		l.unanswered++
	}
	c.recs = append(c.recs, p)
}

// answered counts p as answered in its list.
func (c *Concierge) answered(p pendingRecording) {
	if l := c.lists[p.prog]; l != nil && l.unanswered > 0 {
		l.unanswered--
	}
}

// flushRecordings reports the queued recordings. Every answer is final
// (announced, a duplicate, or refused: no such record task); a failed
// report leaves the queue for the next pass.
func (c *Concierge) flushRecordings(ctx context.Context) {
	for len(c.recs) > 0 {
		n := min(len(c.recs), wire.MaxRecordings)
		rep := wire.RecordingsReport{Recordings: make([]wire.Recording, n)}
		for i, p := range c.recs[:n] {
			rep.Recordings[i] = p.rec
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ans, err := c.ctl.recordings(rctx, c.p.Name, rep)
		cancel()
		if err == nil && len(ans.Results) != n {
			err = fmt.Errorf("control plane answered %d results for %d recordings", len(ans.Results), n)
		}
		if err != nil {
			if !c.recsFailing && ctx.Err() == nil {
				c.log.Warn("recordings report failed; will report again", "recordings", len(c.recs), "err", err)
			}
			c.recsFailing = true
			return
		}
		c.recsFailing = false
		for i, p := range c.recs[:n] {
			if e := ans.Results[i].Error; e != nil {
				c.log.Warn("control plane refused a recording", "task", p.rec.TaskID, "file", p.rec.File, "reason", e.Message)
			}
			c.answered(p)
		}
		clear(c.recs[:n])
		c.recs = c.recs[n:]
	}
}
