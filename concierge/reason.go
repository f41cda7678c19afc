package concierge

import (
	"fmt"
	"strings"
)

// reasonRules map ffmpeg (and general) error texts to a readable reason,
// most specific first. Matching is case-insensitive.
var reasonRules = []struct {
	needles []string
	reason  string
}{
	{[]string{"connection refused"}, "target refused connection"},
	{[]string{"401 unauthorized", "403 forbidden", "server returned 401", "server returned 403", "authentication", "auth failed", "unauthorized", "netconnection.connect.rejected", "publish.badname"}, "authentication failed at target"},
	{[]string{"failed to resolve hostname", "name or service not known", "temporary failure in name resolution", "no address associated"}, "host name does not resolve"},
	{[]string{"connection timed out", "operation timed out", "timed out", "timeout"}, "connection timed out"},
	{[]string{"server returned 404", "404 not found", "streamnotfound", "stream not found"}, "not found at source or target (404)"},
	{[]string{"no such file or directory"}, "file or directory not found"},
	{[]string{"permission denied"}, "permission denied"},
	{[]string{"connection reset by peer"}, "connection reset by peer"},
	{[]string{"broken pipe", "end of file"}, "the other side closed the connection"},
	{[]string{"invalid data found when processing input"}, "invalid input data (the source sent no usable media)"},
	{[]string{"no space left on device"}, "disk full"},
	{[]string{"protocol not found", "unknown protocol"}, "unsupported URL scheme"},
	{[]string{"input/output error"}, "input/output error (source ended or target closed)"},
}

// failureReason turns the tail of a task's log, its exit status and
// supervisord's spawn error into a short reason an operator can act on.
func failureReason(logTail string, exit int, spawnErr string) string {
	lower := strings.ToLower(logTail)
	best, bestAt := "", -1
	// The rule whose text appears last in the log wins: the latest error
	// is usually the cause, earlier ones are retries or warnings.
	for _, r := range reasonRules {
		for _, n := range r.needles {
			if i := strings.LastIndex(lower, n); i > bestAt {
				best, bestAt = r.reason, i
			}
		}
	}
	if best != "" {
		return best
	}
	// supervisord's spawn error says why a process did not start; Python
	// also fills it for ordinary exits ("Bad exit code 1"), so the log wins.
	if spawnErr != "" && strings.TrimSpace(logTail) == "" && !strings.Contains(spawnErr, "Exited too quickly") && !strings.Contains(spawnErr, "Bad exit code") {
		return "could not start: " + spawnErr
	}
	if line := lastLine(logTail); line != "" {
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		if exit == 0 {
			return "exited: " + line
		}
		return fmt.Sprintf("exited with code %d: %s", exit, line)
	}
	if exit == 0 {
		return "exited"
	}
	return fmt.Sprintf("exited with code %d", exit)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// atSource rewrites a reason that blames the target when the failing line
// of the log is about the task's input: ffmpeg prefixes the errors of an
// input with its URL ("rtsp://cam:554/x: Connection refused"), so a pull
// whose camera is down says "source refused connection".
func atSource(reason, logTail, input string) string {
	// A reason naming both already covers the source ("not found at source
	// or target"): rewriting it said "source or source".
	if input == "" || !strings.Contains(reason, "target") || strings.Contains(reason, "source") {
		return reason
	}
	lines := strings.Split(strings.TrimSpace(logTail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, input+":") {
			return strings.ReplaceAll(reason, "target", "source")
		}
		return reason
	}
	return reason
}
