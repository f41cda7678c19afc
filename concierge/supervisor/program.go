package supervisor

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Program is one [program:NAME] section: one task's process.
type Program struct {
	// Name is the program (and group) name: letters, digits, '-', '_', '.'.
	Name string
	// Argv is the command as an argument list; Argv[0] should be an absolute path.
	Argv []string
	// Env adds environment variables (keys [A-Z_][A-Z0-9_]*, values without quotes).
	Env map[string]string
	// Dir is the working directory (optional).
	Dir string
	// StopWaitSecs is how long supervisord waits after SIGTERM before SIGKILL (default 10).
	StopWaitSecs int
	// LogFile receives stdout and stderr (redirect_stderr), rotated at
	// LogMaxBytes (default 1 MiB) keeping LogBackups old files (default 2).
	LogFile     string
	LogMaxBytes int64
	LogBackups  int
}

var (
	programNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	envKeyRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,100}$`)
	bareArgRE     = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
)

// ErrUnsafeArgument is wrapped by every error about an argument that cannot
// pass through a supervisord config file unchanged.
var ErrUnsafeArgument = errors.New("argument cannot be passed safely through supervisord")

// Render returns the config section for p, for the given flavor.
//
// The command line of a program is parsed differently by Python supervisor
// (configparser with inline comments, %-expansion, shlex.split) and by
// ochinchina (go-ini with backslash escapes, ${ENV} and %(x)s expansion, its
// own quote splitter). QuoteCommand only emits forms both read back as the
// same argv, and refuses arguments for which no such form exists.
func (p Program) Render(f Flavor) (string, error) {
	if !programNameRE.MatchString(p.Name) {
		return "", fmt.Errorf("program name %q: use letters, digits, '-', '_', '.'", p.Name)
	}
	cmd, err := QuoteCommand(p.Argv, f)
	if err != nil {
		return "", fmt.Errorf("program %s: %w", p.Name, err)
	}
	stopWait := p.StopWaitSecs
	if stopWait <= 0 {
		stopWait = 10
	}
	maxBytes := p.LogMaxBytes
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	backups := p.LogBackups
	if backups <= 0 {
		backups = 2
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[program:%s]\n", p.Name)
	fmt.Fprintf(&b, "command=%s\n", cmd)
	if p.Dir != "" {
		if err := plainValue(p.Dir); err != nil {
			return "", fmt.Errorf("program %s: directory: %w", p.Name, err)
		}
		fmt.Fprintf(&b, "directory=%s\n", escapePercent(p.Dir, f))
	}
	if len(p.Env) > 0 {
		keys := make([]string, 0, len(p.Env))
		for k := range p.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			v := p.Env[k]
			if !envKeyRE.MatchString(k) {
				return "", fmt.Errorf("program %s: environment key %q is not a valid name", p.Name, k)
			}
			if err := plainValue(v); err != nil || strings.ContainsAny(v, `"',`) {
				return "", fmt.Errorf("program %s: environment %s: value must not contain quotes, commas, backslashes or newlines", p.Name, k)
			}
			parts = append(parts, fmt.Sprintf(`%s="%s"`, k, escapePercent(v, f)))
		}
		fmt.Fprintf(&b, "environment=%s\n", strings.Join(parts, ","))
	}
	// The concierge owns restarts, backoff and the "started" delay:
	// supervisord never restarts. On Python, startsecs=0 makes every exit
	// EXITED with its exit status (a FATAL start reports none). ochinchina
	// mishandles startsecs=0 (a stop can leave the process RUNNING), so it
	// keeps startsecs=1 and a quick exit there has no exit status.
	startSecs := 1
	if f == FlavorPython {
		startSecs = 0
	}
	fmt.Fprintf(&b, "autostart=false\nautorestart=false\nstartsecs=%d\nstartretries=0\n", startSecs)
	fmt.Fprintf(&b, "stopsignal=TERM\nstopwaitsecs=%d\nstopasgroup=true\nkillasgroup=true\n", stopWait)
	if p.LogFile != "" {
		if err := plainValue(p.LogFile); err != nil {
			return "", fmt.Errorf("program %s: log file: %w", p.Name, err)
		}
		fmt.Fprintf(&b, "redirect_stderr=true\nstdout_logfile=%s\nstdout_logfile_maxbytes=%d\nstdout_logfile_backups=%d\n",
			escapePercent(p.LogFile, f), maxBytes, backups)
	}
	return b.String(), nil
}

// plainValue accepts a config value that needs no quoting (paths, env values).
func plainValue(v string) error {
	if strings.ContainsAny(v, "\\\n\r\x00;#") || strings.Contains(v, "${") || strings.Contains(v, "%(") {
		return fmt.Errorf("%q: %w (no backslash, newline, ';', '#', '${' or '%%(')", v, ErrUnsafeArgument)
	}
	return nil
}

func escapePercent(s string, f Flavor) string {
	if f == FlavorPython {
		return strings.ReplaceAll(s, "%", "%%")
	}
	return s
}

// QuoteCommand renders argv as a supervisord command line that both flavors
// split back into exactly argv.
//
// Each argument is written bare when it holds only [A-Za-z0-9_@%+=:,./-],
// else in single quotes, else (if it holds a single quote) in double quotes.
// Refused, with ErrUnsafeArgument: newlines and control characters, a
// backslash (go-ini unescapes it, shlex does not the same way), an argument
// with both quote kinds, whitespace followed by ';' or '#' (an inline
// comment for both INI parsers), '${' (ochinchina's environment
// substitution) and, on ochinchina, '%(' (its expansion, which cannot be
// escaped there). On Python supervisor every '%' is doubled.
func QuoteCommand(argv []string, f Flavor) (string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", fmt.Errorf("empty command: %w", ErrUnsafeArgument)
	}
	parts := make([]string, 0, len(argv))
	for i, a := range argv {
		q, err := quoteArg(a, f)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		parts = append(parts, q)
	}
	return strings.Join(parts, " "), nil
}

func quoteArg(a string, f Flavor) (string, error) {
	for _, r := range a {
		if r == '\n' || r == '\r' || r == 0 || (unicode.IsControl(r) && r != '\t') {
			return "", fmt.Errorf("control character %q: %w", r, ErrUnsafeArgument)
		}
	}
	if strings.Contains(a, `\`) {
		return "", fmt.Errorf("backslash: %w", ErrUnsafeArgument)
	}
	if strings.Contains(a, "${") {
		return "", fmt.Errorf("'${': %w", ErrUnsafeArgument)
	}
	if f != FlavorPython && strings.Contains(a, "%(") {
		return "", fmt.Errorf("'%%(': %w", ErrUnsafeArgument)
	}
	for i := 1; i < len(a); i++ {
		if (a[i] == ';' || a[i] == '#') && unicode.IsSpace(rune(a[i-1])) {
			return "", fmt.Errorf("whitespace before %q (an inline comment to supervisord): %w", a[i], ErrUnsafeArgument)
		}
	}
	a = escapePercent(a, f)
	switch {
	case bareArgRE.MatchString(a):
		return a, nil
	case !strings.Contains(a, "'"):
		return "'" + a + "'", nil
	case !strings.Contains(a, `"`):
		return `"` + a + `"`, nil
	}
	return "", fmt.Errorf("both quote kinds in %q: %w", a, ErrUnsafeArgument)
}
