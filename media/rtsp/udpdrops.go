package rtsp

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// UDPDrops returns how many datagrams the kernel dropped on the server's
// UDP sockets (the shared RTP and RTCP sockets and the per-publisher
// sockets on the same ports) because their receive buffer was full, since
// Start. ok is false where the kernel does not tell (not Linux) or
// without UDP. The figure only grows: drops of sockets since closed stay
// counted.
func (s *Server) UDPDrops() (drops uint64, ok bool) {
	rtpAddr, rtcpAddr := s.UDPAddrs()
	ports := map[uint64]bool{}
	for _, a := range []string{rtpAddr, rtcpAddr} {
		if i := strings.LastIndexByte(a, ':'); i >= 0 {
			if p, err := strconv.ParseUint(a[i+1:], 10, 16); err == nil {
				ports[p] = true
			}
		}
	}
	if len(ports) == 0 {
		return 0, false
	}
	now := map[uint64]uint64{} // socket inode -> drops
	found := false
	for _, name := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		found = true
		procUDPDrops(f, ports, now)
		f.Close()
	}
	if !found {
		return 0, false
	}
	s.dropsMu.Lock()
	defer s.dropsMu.Unlock()
	// Sockets that went away keep their drops in the base.
	for inode, d := range s.dropsSeen {
		if _, alive := now[inode]; !alive {
			s.dropsBase += d
		}
	}
	s.dropsSeen = now
	drops = s.dropsBase
	for _, d := range now {
		drops += d
	}
	return drops, true
}

// procUDPDrops adds to out the drops column of the sockets of
// /proc/net/udp (or udp6) bound to one of ports, by inode.
func procUDPDrops(r io.Reader, ports map[uint64]bool, out map[uint64]uint64) {
	sc := bufio.NewScanner(r)
	sc.Scan() // header
	for sc.Scan() {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
		f := strings.Fields(sc.Text())
		if len(f) < 13 {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		port, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || !ports[port] {
			continue
		}
		inode, err1 := strconv.ParseUint(f[9], 10, 64)
		d, err2 := strconv.ParseUint(f[12], 10, 64)
		if err1 == nil && err2 == nil {
			out[inode] = d
		}
	}
}
