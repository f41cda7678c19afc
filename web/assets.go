// Package web holds the operator UI's front-end: templ components (views),
// the message catalogue (i18n) and the static assets embedded in the binary.
// Vendor libraries (htmx, hls.js, mpegts.js) come from npm with exact pins
// and are copied into static/vendor by build-assets.sh (`make assets`).
package web

import (
	"embed"
	"io/fs"
)

// static holds app.js, app.css and whatever build-assets.sh put into
// static/vendor (on a fresh clone before `make assets` only the first two).
//
//go:embed static
var static embed.FS

// Static is the tree served under /static/.
func Static() fs.FS {
	f, err := fs.Sub(static, "static")
	if err != nil {
		// Only possible if the embed pattern and the folder name disagree.
		panic("web: " + err.Error())
	}
	return f
}

// VendorMissing lists the vendor files the pages need that were not built
// into this binary (empty when `make assets` ran before the build).
func VendorMissing() []string {
	var out []string
	for _, f := range []string{"vendor/htmx.min.js", "vendor/hls.min.js", "vendor/mpegts.min.js"} {
		if _, err := fs.Stat(Static(), f); err != nil {
			out = append(out, f)
		}
	}
	return out
}
