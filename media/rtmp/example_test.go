package rtmp_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/portier/portier/media/rtmp"
)

// A server loop: publishers' messages go to a store, players get the
// stored messages as shared pre-chunked bytes.
func ExampleServerConn() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	defer ln.Close()
	var chunks [][]byte // in a real server: the hub's per-unit encoding cache
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := rtmp.NewServerConn(nc, rtmp.ServerConfig{ReadTimeout: 30 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := c.Accept(ctx)
		cancel()
		if err != nil {
			continue
		}
		switch {
		case req.Kind == rtmp.KindPublish && req.Query.Get("key") != "secret":
			_ = c.Reject("NetStream.Publish.BadName", "wrong stream key")
		case req.Kind == rtmp.KindPublish:
			_ = c.AcceptPublish()
			for {
				msg, err := c.ReadMessage()
				if errors.Is(err, io.EOF) {
					break // clean unpublish
				}
				if err != nil {
					slog.Info("publisher left", "err", err)
					break
				}
				// Every player uses stream id rtmp.PlayStreamID and chunk size
				// rtmp.DefaultChunkSize, so the bytes can be shared.
				chunks = append(chunks, rtmp.AppendChunks(nil, msg.CSID(), rtmp.PlayStreamID,
					msg.Type, msg.Timestamp, msg.Payload, rtmp.DefaultChunkSize))
			}
			c.Close()
		case req.Kind == rtmp.KindPlay:
			if err := c.AcceptPlay(); err != nil {
				continue
			}
			if c.WriteChunks(chunks...) == nil {
				_ = c.PlayEnd()
			}
			c.Close()
		}
	}
}

// Pulling a stream from another server, as an edge does.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := rtmp.Dial(ctx, "rtmp://127.0.0.1:1935/live", rtmp.ClientConfig{})
	if err != nil {
		return
	}
	defer cc.Close()
	var se *rtmp.StatusError
	if err := cc.Play(ctx, "foo"); errors.As(err, &se) {
		slog.Info("origin refused", "code", se.Code)
		return
	}
	for {
		msg, err := cc.ReadMessage()
		if err != nil {
			return // io.EOF: the stream ended
		}
		_ = msg // hand to the hub
	}
}
