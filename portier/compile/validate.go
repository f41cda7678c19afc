package compile

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func checkStream(st StreamState) error {
	if !ValidName(st.App) {
		return fmt.Errorf("%w: app name %q: must be %s", ErrInvalid, st.App, NameRule)
	}
	if !ValidName(st.Name) {
		return fmt.Errorf("%w: stream name %q: must be %s", ErrInvalid, st.Name, NameRule)
	}
	if st.Key != "" {
		if err := checkKey(st.Key); err != nil {
			return err
		}
	}
	return nil
}

// checkKey accepts printable ASCII without spaces: what platforms' stream
// keys look like.
func checkKey(k string) error {
	if len(k) > 512 {
		return fmt.Errorf("%w: key is longer than 512 characters", ErrInvalid)
	}
	for _, r := range k {
		if r <= 0x20 || r >= 0x7f {
			return fmt.Errorf("%w: key contains a space, control or non-ASCII character", ErrInvalid)
		}
	}
	return nil
}

func checkURL(what, s string, schemes ...string) error {
	_, err := parseURL(what, s, schemes...)
	return err
}

func parseURL(what, s string, schemes ...string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > 2048 {
		return nil, fmt.Errorf("%w: %s is longer than 2048 characters", ErrInvalid, what)
	}
	for _, r := range s {
		if r <= 0x20 || r == 0x7f {
			return nil, fmt.Errorf("%w: %s contains a space or control character", ErrInvalid, what)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return nil, fmt.Errorf("%w: %s scheme %q: want one of %s", ErrInvalid, what, u.Scheme, strings.Join(schemes, ", "))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: %s has no host", ErrInvalid, what)
	}
	return u, nil
}

func checkRendition(r Rendition) error { return CheckRendition(r) }
