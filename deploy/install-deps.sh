#!/usr/bin/env bash
# Installs the Debian packages that `make run`, `make test` and `make bench`
# need when they are missing. Runs apt-get as root; otherwise names what to install.
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need ffmpeg ffmpeg
need ffprobe ffmpeg
need npm npm # web UI assets (make assets)
case "${1:-run}" in
test|bench)
	need nginx nginx
	[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || want+=(libnginx-mod-rtmp)
	need supervisord supervisor
	need chromium chromium
	need rtmpdump rtmpdump
	need gst-launch-1.0 gstreamer1.0-tools
	[ -e /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstflv.so ] || [ ! -d /usr/lib/x86_64-linux-gnu ] || want+=(gstreamer1.0-plugins-good)
	# h264parse and avdec_h264 / avdec_aac: GStreamer parses and decodes what it plays in the
	# RTSP and RTMP interop tests
	[ -e /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstvideoparsersbad.so ] || [ ! -d /usr/lib/x86_64-linux-gnu ] || want+=(gstreamer1.0-plugins-bad)
	[ -e /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstlibav.so ] || [ ! -d /usr/lib/x86_64-linux-gnu ] || want+=(gstreamer1.0-libav)
	# deploy/ tests: systemd-analyze verify on the units; the image built and
	# run with podman (runc: crun refuses hybrid cgroup hosts)
	need systemd-analyze systemd
	need podman podman
	need runc runc
	;;
esac
[ "${1:-run}" = bench ] && { need wrk wrk; }
[ ${#want[@]} -eq 0 ] && exit 0
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
	echo "missing system packages: ${want[*]}" >&2
	echo "install them with: sudo apt-get install -y ${want[*]}" >&2
	exit 1
fi
echo "installing system packages: ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
