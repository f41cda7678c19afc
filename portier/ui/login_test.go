package ui

import "testing"

// TestSafeNext: only clean same-site paths survive as post-login redirects.
func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/streams", "/streams"},
		{"/streams/3?reveal=1", "/streams/3?reveal=1"},
		{"/audit?actor=op1&offset=50#top", "/audit?actor=op1&offset=50#top"},
		{"/%09/evil.example/", "/%09/evil.example/"}, // encoded: a path segment, not a tab
		{"/\t/evil.example/", "/"},
		{"/\n/evil.example/", "/"},
		{"/\r/evil.example/", "/"},
		{"/ /evil.example/", "/"},
		{"/\u00a0/evil.example/", "/"},
		{"/\u2028/evil.example/", "/"},
		{"/\x00/evil.example/", "/"},
		{"/\x7f/evil.example/", "/"},
		{"//evil.example/", "/"},
		{"///evil.example/", "/"},
		{"/\\evil.example/", "/"},
		{"\\\\evil.example/", "/"},
		{"/a\\b", "/"},
		{"/streams//x", "/"},
		{"/%2f/evil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"streams", "/"},
		{"/\xff", "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
