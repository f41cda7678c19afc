// Command writefloor measures the floor of a fan-out's CPU per delivered
// Gbit on a machine: a loop that does nothing but one writev system call
// per player per batch of frames, of the fan-out benchmark's stream (a
// 2 Mbit/s video frame per 40 ms, the audio frames riding along), to
// loopback TCP sockets read by another process. No server can deliver the
// same writes for less CPU on this kernel: what it costs is the kernel's
// (and, on loopback, the receiving side's softirq work, which the kernel
// charges to the sender) plus a loop.
//
//	go run ./tests/bench/cmd/writefloor [-players 1000] [-frames-per-write 1] [-seconds 15]
//
// It prints one line: players, frames per write, writes per second, CPU
// seconds per delivered Gbit, the largest hold of a frame that the batching
// adds, and writes that found a full socket (skipped, so they are not
// counted as delivered).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	players := flag.Int("players", 1000, "loopback connections written to")
	k := flag.Int("frames-per-write", 1, "video frames per writev (audio rides along)")
	seconds := flag.Int("seconds", 15, "measured seconds (after 2 s of warm-up)")
	fps := flag.Int("fps", 25, "video frames per second")
	videoBitrate := flag.Int("video-bitrate", 1_936_000, "video bits per second")
	audioBitrate := flag.Int("audio-bitrate", 64_000, "audio bits per second (AAC, 1024 samples at 44.1 kHz per frame)")
	sink := flag.Int("sink", 0, "internal: read and discard this many connections")
	flag.Parse()
	if *sink > 0 {
		runSink(*sink)
		return
	}
	if *players < 1 || *players > 20000 || *k < 1 || *k > 25 || *seconds < 1 || *seconds > 120 || *fps < 1 || *fps > 120 {
		fmt.Fprintln(os.Stderr, "writefloor: -players 1..20000, -frames-per-write 1..25, -seconds 1..120, -fps 1..120")
		os.Exit(2)
	}
	if err := run(*players, *k, *seconds, *fps, *videoBitrate, *audioBitrate); err != nil {
		fmt.Fprintln(os.Stderr, "writefloor:", err)
		os.Exit(1)
	}
}

// run starts the sink process, connects to it and writes.
func run(players, k, seconds, fps, videoBitrate, audioBitrate int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sink := exec.Command(self, "-sink", fmt.Sprint(players))
	sink.Stderr = os.Stderr
	out, err := sink.StdoutPipe()
	if err != nil {
		return err
	}
	if err := sink.Start(); err != nil {
		return err
	}
	defer func() { _ = sink.Process.Kill(); _ = sink.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	fds := make([]int, 0, players)
	for range players {
		c, err := net.Dial("tcp", strings.TrimSpace(addr))
		if err != nil {
			return err
		}
		f, err := c.(*net.TCPConn).File() // a blocking duplicate: raw writev on it
		if err != nil {
			return err
		}
		_ = c.Close()
		fds = append(fds, int(f.Fd()))
		defer f.Close()
	}

	video := make([]byte, videoBitrate/8/fps)
	audioFrame := 1024.0 / 44100 // seconds
	audio := make([]byte, int(float64(audioBitrate)/8*audioFrame))
	frameDur := time.Second / time.Duration(fps)

	// One batch: k video frames with the audio frames of their span, one
	// iovec each, as a relay's writev of shared message encodings.
	var bufs [][]byte
	var audioDue float64
	for range k {
		bufs = append(bufs, video)
		for audioDue += frameDur.Seconds(); audioDue >= audioFrame; audioDue -= audioFrame {
			bufs = append(bufs, audio)
		}
	}
	iov := make([]syscall.Iovec, len(bufs))
	batchBytes := 0
	for i, b := range bufs {
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
		batchBytes += len(b)
	}

	warm := 2 * time.Second
	start := time.Now()
	var (
		measuring                bool
		cpu0                     time.Duration
		t0                       time.Time
		bytes, writes, fullSocks int64
	)
	for frame := 1; ; frame++ {
		next := start.Add(time.Duration(frame) * frameDur)
		time.Sleep(time.Until(next))
		if !measuring && time.Since(start) >= warm {
			measuring, cpu0, t0 = true, cpuTime(), time.Now()
		}
		if measuring && time.Since(t0) >= time.Duration(seconds)*time.Second {
			break
		}
		if frame%k != 0 {
			continue
		}
		for _, fd := range fds {
			n, err := writev(fd, iov)
			switch {
			case errors.Is(err, syscall.EAGAIN):
				fullSocks++
			case err != nil:
				return fmt.Errorf("writev: %w", err)
			case n != batchBytes:
				return fmt.Errorf("writev wrote %d of %d bytes", n, batchBytes)
			}
			if measuring && err == nil {
				bytes += int64(n)
				writes++
			}
		}
	}
	took := time.Since(t0)
	cpu := cpuTime() - cpu0
	gbit := float64(bytes) * 8 / 1e9
	fmt.Printf("players %d frames/write %d writes/s %.0f cpu-s/Gbit %.4f cpu %.1f%% hold-ms %d full-sockets %d\n",
		len(fds), k, float64(writes)/took.Seconds(), cpu.Seconds()/gbit, 100*cpu.Seconds()/took.Seconds(),
		(time.Duration(k-1) * frameDur).Milliseconds(), fullSocks)
	return nil
}

func writev(fd int, iov []syscall.Iovec) (int, error) {
	n, _, e := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runSink accepts n connections on a loopback port it prints, and reads
// and discards what they carry until it is killed.
func runSink(n int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "writefloor sink:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	for range n {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "writefloor sink:", err)
			os.Exit(1)
		}
		go func() { _, _ = io.Copy(io.Discard, c) }()
	}
	select {}
}
