// Package i18n is the operator UI's small message catalogue: English is the
// source language (messages are looked up by their English text) and German
// is the one translation. The language comes from the account setting or the
// browser's Accept-Language header.
package i18n

import (
	"fmt"
	"strconv"
	"strings"
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
