#!/bin/sh
# Prepares the operator UI's front-end assets: installs the exact npm pins
# from package-lock.json (only when node_modules is missing or stale) and
# copies the minified browser builds into static/vendor/, which the Go binary
# embeds. Nothing is fetched at page load: every page uses these copies.
set -eu
cd "$(dirname "$0")"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "build-assets: npm is required (apt-get install npm)" >&2
		exit 1
	fi
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
fi

mkdir -p static/vendor
copy() {
	if [ ! -f "$1" ]; then
		echo "build-assets: $1 is missing; delete web/node_modules and run again" >&2
		exit 1
	fi
	cmp -s "$1" "static/vendor/$2" 2>/dev/null || cp "$1" "static/vendor/$2"
}
copy node_modules/htmx.org/dist/htmx.min.js htmx.min.js
copy node_modules/hls.js/dist/hls.min.js hls.min.js
copy node_modules/mpegts.js/dist/mpegts.js mpegts.min.js
copy node_modules/hls.js/LICENSE hls.js.LICENSE.txt
copy node_modules/htmx.org/LICENSE htmx.LICENSE.txt
copy node_modules/mpegts.js/LICENSE mpegts.js.LICENSE.txt
