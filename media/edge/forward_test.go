package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/rendezvous"
	"github.com/portier/portier/media/rtmp"
)

// publishOrigin accepts publishes whose query has key=good and reports the
// name, query and media count it received.
type publishOrigin struct {
	ln  net.Listener
	got chan string // "name|rawquery|messages"
}

func startPublishOrigin(t *testing.T) *publishOrigin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &publishOrigin{ln: ln, got: make(chan string, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c := rtmp.NewServerConn(nc, rtmp.ServerConfig{})
				defer c.Close()
				req, err := c.Accept(context.Background())
				if err != nil {
					return
				}
				if req.Query.Get("key") != "good" {
					c.Reject("NetStream.Publish.Unauthorized", "wrong key")
					return
				}
				c.AcceptPublish()
				n := 0
				for {
					if _, err := c.ReadMessage(); err != nil {
						if errors.Is(err, io.EOF) {
							o.got <- req.App + "/" + req.Name + "|" + req.RawQuery + "|" + string(rune('0'+n))
						}
						return
					}
					n++
				}
			}()
		}
	}()
	return o
}

type staticLister []nodewire.Node

func (s staticLister) LiveOrigins(context.Context) ([]nodewire.Node, error) { return s, nil }

func TestForwarderHashesAndRelaysRefusal(t *testing.T) {
	o1, o2 := startPublishOrigin(t), startPublishOrigin(t)
	nodes := staticLister{{Name: "o1", RTMPAddress: o1.ln.Addr().String(), Alive: true}, {Name: "o2", RTMPAddress: o2.ln.Addr().String(), Alive: true}}
	f := NewForwarder(ForwarderParams{Origins: nodes})
	// Another edge with only the static list (control plane unreachable)
	// must choose the same origin.
	g := NewForwarder(ForwarderParams{StaticOrigins: []string{nodes[1].RTMPAddress, nodes[0].RTMPAddress}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, _ := f.Choose(ctx, "live", "foo")
	b, _ := g.Choose(ctx, "live", "foo")
	if a[0] != b[0] {
		t.Fatalf("edges disagree: %v vs %v", a, b)
	}

	fw, err := f.Open(ctx, "live", "foo", "key=good&x=1")
	if err != nil {
		t.Fatal(err)
	}
	if fw.Origin != a[0] {
		t.Fatalf("forwarded to %s, want hashed %s", fw.Origin, a[0])
	}
	for i := range 3 {
		if err := fw.Write(rtmp.Message{Type: rtmp.TypeAudio, Timestamp: uint32(i * 20), Payload: []byte{0xAF, 1, 2}}); err != nil {
			t.Fatal(err)
		}
	}
	fw.Close()
	target := o1
	if fw.Origin == nodes[1].RTMPAddress {
		target = o2
	}
	select {
	case s := <-target.got:
		if s != "live/foo|key=good&x=1|3" {
			t.Fatalf("origin got %q", s)
		}
	case <-ctx.Done():
		t.Fatal("origin got nothing")
	}

	_, err = f.Open(ctx, "live", "foo", "key=bad")
	var se *rtmp.StatusError
	if !errors.As(err, &se) || se.Code != "NetStream.Publish.Unauthorized" || se.Description != "wrong key" {
		t.Fatalf("refusal = %v, want the origin's NetStream.Publish.Unauthorized", err)
	}
	if _, err := NewForwarder(ForwarderParams{}).Open(ctx, "live", "foo", ""); !errors.Is(err, ErrNoOrigin) {
		t.Fatalf("no origins: %v", err)
	}
}

type keyNames map[string]string // key -> public name

func (k keyNames) ResolvePublishName(_ context.Context, _, name string) (string, error) {
	if pub, ok := k[name]; ok {
		return pub, nil
	}
	if name == "unreachable" {
		return "", errors.New("control plane down")
	}
	return name, nil
}

// A key used as the name is hashed as its stream's public name; when the
// name cannot be resolved it is hashed as given.
func TestForwarderHashesPublicName(t *testing.T) {
	var addrs []string
	var nodes staticLister
	for i := range 8 {
		a := fmt.Sprintf("10.0.0.%d:1935", i+1)
		addrs = append(addrs, a)
		nodes = append(nodes, nodewire.Node{Name: fmt.Sprint(i), RTMPAddress: a, Alive: true})
	}
	f := NewForwarder(ForwarderParams{Origins: nodes, Names: keyNames{"k-secret": "show"}})
	ctx := context.Background()
	byKey, _ := f.Choose(ctx, "live", "k-secret")
	byName, _ := f.Choose(ctx, "live", "show")
	if byKey[0] != byName[0] || byKey[0] != rendezvous.Pick("live/show", addrs) {
		t.Fatalf("key form -> %s, name form -> %s, want both %s", byKey[0], byName[0], rendezvous.Pick("live/show", addrs))
	}
	down, _ := f.Choose(ctx, "live", "unreachable")
	if down[0] != rendezvous.Pick("live/unreachable", addrs) {
		t.Fatalf("unresolved name hashed to %s, want the name as given", down[0])
	}
}
