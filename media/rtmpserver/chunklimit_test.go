package rtmpserver

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A connection that opens partial messages on many chunk streams before any
// publish is closed, with one log line that says why.
func TestChunkLimitClosesWithOneLogLine(t *testing.T) {
	env := startServer(t, Params{})
	nc, err := net.Dial("tcp", env.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	// Handshake: C0 C1, read S0 S1 S2, C2 echoes S1.
	c0c1 := make([]byte, 1+1536)
	c0c1[0] = 3
	if _, err := nc.Write(c0c1); err != nil {
		t.Fatal(err)
	}
	s := make([]byte, 1+2*1536)
	if _, err := io.ReadFull(nc, s); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(s[1 : 1+1536]); err != nil {
		t.Fatal(err)
	}
	// SetChunkSize 1, then 1,000 chunk streams announcing 8 MiB messages.
	wire := []byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1}
	size := 8 << 20
	for i := range 1000 {
		csid := 3 + i
		switch {
		case csid < 64:
			wire = append(wire, byte(csid))
		case csid < 320:
			wire = append(wire, 0, byte(csid-64))
		default:
			wire = append(wire, 1, byte(csid-64), byte((csid-64)>>8))
		}
		wire = append(wire, 0, 0, 0, byte(size>>16), byte(size>>8), byte(size), 9, 1, 0, 0, 0, 0x17)
	}
	_, _ = nc.Write(wire) // the server may close before reading it all
	if _, err := io.Copy(io.Discard, nc); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept the connection open")
		}
	}
	const want = `reason="chunk limits exceeded before authorisation"`
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(env.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var lines []string
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(l, "chunk") && strings.Contains(l, "limit") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines about the chunk limit, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	t.Log(lines[0])
}
