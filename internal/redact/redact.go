// Package redact removes secrets (stream keys, restream keys, tokens, URL
// credentials) from text that operators and viewers read, such as the log
// tails and errors of tasks. The concierge redacts what it reports and the
// control plane redacts again what it stores, with these same rules.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every secret.
const Mask = "***"

// shortSecret: a known secret shorter than this is replaced only where it
// stands as a URL part (after '/', '=' or ':', up to a character that
// cannot be part of a key), so that a key such as "target" does not mask
// the word in "target refused connection".
const shortSecret = 8

// minSecret: shorter values are not secrets worth replacing ("", "a").
const minSecret = 3

// sensitiveParams are query parameters whose values are credentials.
var sensitiveParams = []string{
	"key", "token", "sig", "signature", "secret", "password", "passwd", "pwd", "pass",
	"auth", "streamid", "access_token", "apikey", "api_key", "credential", "portier_internal",
}

var (
	// userinfo: scheme://USER[:PASS]@host.
	userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#'"]+@`)
	// query: ?key=VALUE, &token=VALUE, ...
	queryRE = regexp.MustCompile(`(?i)([?&;](?:` + strings.Join(sensitiveParams, "|") + `)=)[^&\s'"]+`)
	// bearer: Authorization: Bearer VALUE (and Basic).
	bearerRE = regexp.MustCompile(`(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+`)
	// hlsCred: an HLS task credential (internal/hlscred, "hls1.S.T.E.SIG")
	// wherever it stands, as ffmpeg may quote the header without "Bearer".
	hlsCredRE = regexp.MustCompile(`\bhls1\.[0-9]+\.[0-9]+\.[0-9]+\.[0-9A-Fa-f]+`)
)

// Redactor replaces the secret values it knows, and anything that looks
// like a credential (URL user info, key=/token=/sig=-style query values,
// bearer tokens), with Mask. The zero value knows no values but still
// applies the patterns. A Redactor is immutable after New and safe for
// concurrent use.
type Redactor struct {
	long  []string         // replaced anywhere, longest first
	short []*regexp.Regexp // replaced where they stand as a URL part
}

// New returns a Redactor for the given secret values (empty and very short
// ones are ignored; the URL-escaped forms of each are added).
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var all []string
	add := func(v string) {
		if len(v) >= minSecret && v != Mask && !seen[v] {
			seen[v] = true
			all = append(all, v)
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
	}
	// Longest first: a secret that contains another is replaced whole.
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	r := &Redactor{}
	for _, s := range all {
		if len(s) >= shortSecret {
			r.long = append(r.long, s)
		} else {
			r.short = append(r.short, regexp.MustCompile(`([/=:])`+regexp.QuoteMeta(s)+`($|[^A-Za-z0-9_-])`))
		}
	}
	return r
}

// String returns s with every secret replaced by Mask.
func (r *Redactor) String(s string) string {
	if s == "" {
		return s
	}
	if r != nil {
		for _, v := range r.long {
			s = strings.ReplaceAll(s, v, Mask)
		}
		for _, re := range r.short {
			// Twice: adjacent matches share a delimiter, which the first
			// pass consumes.
			s = re.ReplaceAllString(s, "${1}"+Mask+"${2}")
			s = re.ReplaceAllString(s, "${1}"+Mask+"${2}")
		}
	}
	s = userinfoRE.ReplaceAllString(s, "${1}"+Mask+"@")
	s = queryRE.ReplaceAllString(s, "${1}"+Mask)
	s = bearerRE.ReplaceAllString(s, "${1}"+Mask)
	s = hlsCredRE.ReplaceAllString(s, Mask)
	return s
}

// String redacts s with the patterns and the given secret values.
func String(s string, secrets ...string) string { return New(secrets...).String(s) }

// URLSecrets returns the secret values in a URL: its user info (user and
// password), the values of sensitive query parameters and, when keyInPath
// is set (a restream target: rtmp://host/app/KEY), the last path segment of
// an rtmp or rtmps URL whose path has at least two segments.
func URLSecrets(raw string, keyInPath bool) []string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil
	}
	var out []string
	if u.User != nil {
		out = append(out, u.User.Username())
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	for k, vs := range u.Query() {
		if slices.Contains(sensitiveParams, strings.ToLower(k)) {
			out = append(out, vs...)
		}
	}
	if keyInPath && (u.Scheme == "rtmp" || u.Scheme == "rtmps") {
		segs := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(segs) >= 2 && segs[len(segs)-1] != "" {
			last := segs[len(segs)-1]
			out = append(out, last)
			if dec, err := url.PathUnescape(last); err == nil && dec != last {
				out = append(out, dec)
			}
		}
	}
	return out
}

// TaskSecrets returns the secret values in the command line of a task of
// type typ (restream, record, pull, hls): the secrets of every URL among
// args, credentials in -headers values, and the key at the end of a
// restream's rtmp target (its last argument).
func TaskSecrets(typ string, args []string) []string {
	var out []string
	for i, a := range args {
		if i > 0 && args[i-1] == "-headers" {
			for line := range strings.SplitSeq(a, "\n") {
				name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
				if !ok {
					continue
				}
				n := strings.ToLower(name)
				if strings.Contains(n, "auth") || strings.Contains(n, "token") || strings.Contains(n, "key") {
					f := strings.Fields(val)
					if len(f) > 0 {
						out = append(out, f[len(f)-1])
					}
				}
			}
			continue
		}
		if strings.Contains(a, "://") {
			out = append(out, URLSecrets(a, typ == "restream" && i == len(args)-1)...)
		}
	}
	return out
}
