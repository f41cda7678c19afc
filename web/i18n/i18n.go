// Package i18n is the operator UI's small message catalogue: English is the
// source language (messages are looked up by their English text) and German
// is the one translation. The language comes from the account setting or the
// browser's Accept-Language header.
package i18n

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Lang is a supported UI language.
type Lang string

// The supported languages.
const (
	EN Lang = "en"
	DE Lang = "de"
)

// Supported lists the languages a user can choose, in display order.
var Supported = []Lang{EN, DE}

// Name is the language's name in itself.
func (l Lang) Name() string {
	if l == DE {
		return "Deutsch"
	}
	return "English"
}

// Parse returns the supported language s names ("de", "de-AT", "EN"), or
// false.
func Parse(s string) (Lang, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexAny(s, "-_"); i > 0 {
		s = s[:i]
	}
	switch s {
	case "en":
		return EN, true
	case "de":
		return DE, true
	}
	return "", false
}

// Negotiate picks the language: the account setting when it names a
// supported language, else the best supported entry of an Accept-Language
// header (by q-value, then order), else English.
func Negotiate(account, acceptLanguage string) Lang {
	if l, ok := Parse(account); ok {
		return l
	}
	best, bestQ := EN, -1.0
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		l, ok := Parse(tag)
		if !ok || q <= 0 {
			continue
		}
		if q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// T translates an English message and formats it with args (fmt verbs).
// A message without a translation is shown in English.
func (l Lang) T(msg string, args ...any) string {
	if l == DE {
		if tr, ok := german[msg]; ok {
			msg = tr
		}
	} else if d, ok := englishDisplay[msg]; ok {
		msg = d
	}
	if len(args) == 0 {
		return msg
	}
	return fmt.Sprintf(msg, args...)
}

// englishDisplay spells values that the code uses in lower case (task
// types) as English text shows them.
var englishDisplay = map[string]string{"hls": "HLS", "restream": "Restream", "record": "Recording", "pull": "Pull"}

// Has reports whether the catalogue translates msg into l (English always).
func (l Lang) Has(msg string) bool {
	if l != DE {
		return true
	}
	_, ok := german[msg]
	return ok
}

// Catalogue returns a copy of l's translations keyed by their English
// source text (empty for English), for tests that look for English left
// on a translated page.
func (l Lang) Catalogue() map[string]string {
	out := map[string]string{}
	if l != DE {
		return out
	}
	for k, v := range german {
		out[k] = v
	}
	return out
}

// Reason translates a reason or error text that the control plane, the
// scheduler or a concierge built from catalogued parts: "a: b" chains
// ("invalid task config: …"), and messages with arguments ("%s (retry %d in
// %s)"), whose text arguments are translated in turn. What the catalogue
// does not know (an ffmpeg log line quoted in a reason) stays as it is.
func (l Lang) Reason(s string) string {
	if l != DE || s == "" {
		return s
	}
	return l.reason(s, 0)
}

func (l Lang) reason(s string, depth int) string {
	if tr, ok := german[s]; ok {
		return tr
	}
	if depth > 4 {
		return s
	}
	for _, p := range germanPatterns() {
		m := p.re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		args := make([]any, len(m)-1)
		for i, a := range m[1:] {
			if p.text[i] {
				a = l.reason(a, depth+1)
			}
			args[i] = a
		}
		return fmt.Sprintf(p.de, args...)
	}
	if head, tail, ok := strings.Cut(s, ": "); ok {
		return l.reason(head, depth+1) + ": " + l.reason(tail, depth+1)
	}
	return s
}

// pattern is a catalogued message with arguments, as a regular expression
// over its English text and a format of its German one.
type pattern struct {
	re   *regexp.Regexp
	de   string // the German text with every verb turned into %s
	text []bool // whether argument i is text to translate (a %s)
}

var (
	patternsOnce sync.Once
	patterns     []pattern
	verbRE       = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)
)

// germanPatterns turns the catalogue's messages with arguments into
// patterns, longest English text first so the most specific one wins.
func germanPatterns() []pattern {
	patternsOnce.Do(func() {
		keys := make([]string, 0, len(german))
		for en := range german {
			if verbRE.MatchString(en) {
				keys = append(keys, en)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) > len(keys[j])
			}
			return keys[i] < keys[j]
		})
		for _, en := range keys {
			var text []bool
			var b strings.Builder
			b.WriteString("^")
			rest := en
			for {
				loc := verbRE.FindStringIndex(rest)
				if loc == nil {
					b.WriteString(regexp.QuoteMeta(rest))
					break
				}
				b.WriteString(regexp.QuoteMeta(rest[:loc[0]]))
				switch verb := rest[loc[1]-1]; verb {
				case 'd':
					b.WriteString(`(-?\d+)`)
				default:
					b.WriteString(`(.+?)`)
				}
				text = append(text, rest[loc[1]-1] == 's')
				rest = rest[loc[1]:]
			}
			b.WriteString("$")
			patterns = append(patterns, pattern{re: regexp.MustCompile(b.String()), de: verbRE.ReplaceAllString(german[en], "%s"), text: text})
		}
	})
	return patterns
}
