package compile

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// nameRE is what an app, stream or rendition name may look like: it ends up
// in URLs and file paths.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func checkStream(st StreamState) error {
	if !nameRE.MatchString(st.App) || strings.Contains(st.App, "..") {
		return fmt.Errorf("%w: app name %q", ErrInvalid, st.App)
	}
	if !nameRE.MatchString(st.Name) || strings.Contains(st.Name, "..") {
		return fmt.Errorf("%w: stream name %q", ErrInvalid, st.Name)
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

func checkRendition(r Rendition) error {
	if !nameRE.MatchString(r.Name) {
		return fmt.Errorf("%w: name %q: letters, digits, '.', '_' and '-' only", ErrInvalid, r.Name)
	}
	if r.Width < 16 || r.Width > 7680 || r.Height < 16 || r.Height > 4320 || r.Width%2 != 0 || r.Height%2 != 0 {
		return fmt.Errorf("%w: size %dx%d: want even sizes between 16x16 and 7680x4320", ErrInvalid, r.Width, r.Height)
	}
	if r.VideoBitrate < 50 || r.VideoBitrate > 100000 {
		return fmt.Errorf("%w: video bitrate %d kbit/s: want 50..100000", ErrInvalid, r.VideoBitrate)
	}
	if r.AudioBitrate != 0 && (r.AudioBitrate < 16 || r.AudioBitrate > 512) {
		return fmt.Errorf("%w: audio bitrate %d kbit/s: want 16..512", ErrInvalid, r.AudioBitrate)
	}
	return nil
}
