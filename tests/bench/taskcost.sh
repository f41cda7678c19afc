#!/bin/sh
# taskcost.sh measures what the ffmpeg commands of Portier's task types cost
# in CPU: user+sys seconds (from /proc/PID/stat) per wall second, i.e. cores.
# It is the measurement behind internal/taskcost (see docs/benchmarks.md,
# "Task cost").
#
# The input is a ~2 Mbit/s H.264+AAC stream (lavfi testsrc2 1280x720 30 fps,
# x264 veryfast CBR 1900 kbit/s, GOP 2 s, AAC 96 kbit/s), encoded once to a
# file and served over RTMP in real time by an ffmpeg listener, as a relay
# would serve it; each task's ffmpeg reads it with the arguments the compiler
# writes (portier/compile) and writes to a second ffmpeg RTMP listener
# (restream), to segment files (record) or to an HLS directory (encode).
#
# Usage: tests/bench/taskcost.sh [SECONDS]   (default 30 s per task)
set -eu
SECS=${1:-30}
DIR=$(mktemp -d)
trap 'for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"' EXIT INT TERM
SRC_PORT=19351
OUT_PORT=19352
Q="-hide_banner -nostdin -loglevel error"

ffmpeg $Q -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
	-t $((SECS + 20)) -c:v libx264 -preset veryfast -b:v 1900k -maxrate 1900k -bufsize 3800k -g 60 -pix_fmt yuv420p \
	-c:a aac -b:a 96k -f flv "$DIR/src.flv"
echo "input: $(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$DIR/src.flv") bit/s, 1280x720 30 fps H.264 + AAC"

# ticks PID: utime+stime of PID in clock ticks (USER_HZ, 100/s).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# media: the last out_time_us the task's -progress file reports.
media() { awk -F= '$1 == "out_time_us" { t = $2 } END { print t + 0 }' "$DIR/progress"; }

# measure NAME ARGS...: runs the task's ffmpeg against a fresh source for
# SECS seconds after a 5 s warm-up and prints its CPU per wall second and
# per second of media it processed (the cost of keeping up in real time,
# which a loaded host cannot hide by slowing the task down).
measure() {
	name=$1
	shift
	ffmpeg $Q -re -i "$DIR/src.flv" -c copy -f flv -listen 1 "rtmp://127.0.0.1:$SRC_PORT/live/in" 2>/dev/null &
	src=$!
	sink=
	case "$*" in *"$OUT_PORT"*)
		ffmpeg $Q -listen 1 -i "rtmp://127.0.0.1:$OUT_PORT/live/out" -c copy -f null - 2>/dev/null &
		sink=$!
		;;
	esac
	sleep 1
	rm -f "$DIR/progress"
	ffmpeg -hide_banner -nostdin -loglevel error -progress "$DIR/progress" -stats_period 1 \
		-rw_timeout 10000000 -i "rtmp://127.0.0.1:$SRC_PORT/live/in" "$@" &
	task=$!
	sleep 5
	t0=$(ticks $task) m0=$(media) s0=$(date +%s.%N)
	sleep "$SECS"
	t1=$(ticks $task) m1=$(media) s1=$(date +%s.%N)
	kill $task 2>/dev/null || true
	wait $task 2>/dev/null || true
	kill $src $sink 2>/dev/null || true
	wait $src $sink 2>/dev/null || true
	awk -v n="$name" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v m0="$m0" -v m1="$m1" 'BEGIN {
		cpu = (t1 - t0) / 100; wall = s1 - s0; med = (m1 - m0) / 1e6
		printf "%-28s %.4f cores per wall s, %.4f CPU s per media s (%.2f CPU s, %.1f s wall, %.1f s media)\n",
			n, cpu / wall, cpu / med, cpu, wall, med }'
}

mkdir -p "$DIR/rec" "$DIR/hls360" "$DIR/hls720"
measure "restream (copy to RTMP)" -c copy -f flv "rtmp://127.0.0.1:$OUT_PORT/live/out"
measure "record (copy to segments)" -c copy -map '0:v?' -map '0:a?' -f segment -segment_time 60 -segment_format mpegts \
	-strftime 1 -reset_timestamps 1 "$DIR/rec/%Y%m%d-%H%M%S.ts"
# The HLS task's encode of one rendition (compile's hls.go, without the
# HTTP PUTs): 360p30 is one unit of compile.HLSCost, 720p30 four.
for r in 640x360:800 1280x720:2800; do
	w=${r%%x*}
	rest=${r#*x}
	h=${rest%%:*}
	b=${r##*:}
	measure "hls encode ${w}x${h} 30 fps" -filter_complex "[0:v]split=1[s0];[s0]scale=w=$w:h=$h,format=yuv420p[v0]" \
		-map '[v0]' -c:v:0 libx264 -preset:v:0 veryfast -b:v:0 "${b}k" -maxrate:v:0 "${b}k" -bufsize:v:0 "$((2 * b))k" \
		-sc_threshold:v:0 0 -force_key_frames:v:0 'expr:gte(t,n_forced*2)' -map 0:a:0 -c:a:0 aac -b:a:0 96k \
		-f hls -hls_time 2 -hls_list_size 6 -var_stream_map 'v:0,a:0,name:r' -master_pl_name master.m3u8 \
		-hls_segment_filename "$DIR/hls${h}/%v/%d.ts" "$DIR/hls${h}/%v/index.m3u8"
done
