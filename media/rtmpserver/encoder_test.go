package rtmpserver

import (
	"context"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/rtmp/amf0"
)

// An OBS-like publisher: the hub names its software by the connect's
// flashVer until its onMetaData names the encoder, and the publisher's
// address is the connection's.
func TestPublisherEncoderFromConnectThenMetadata(t *testing.T) {
	env := startServer(t, Params{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{FlashVer: "FMLE/3.0 (compatible; FMSc/1.0)"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(ctx, "obs"); err != nil {
		t.Fatal(err)
	}
	encoder := func() string {
		si, _ := env.hub.Stream("live/obs")
		return si.Publisher.Encoder
	}
	testutil.Eventually(t, 10*time.Second, "the connect's flashVer as the encoder", func() bool {
		return encoder() == "FMLE/3.0 (compatible; FMSc/1.0)"
	})
	meta, err := flv.BuildMetadata(map[string]any{"encoder": "obs-output module (libobs version 30.1.2)", "width": 1280.0})
	if err != nil {
		t.Fatal(err)
	}
	body, err := amf0.EncodeAll(nil, "@setDataFrame")
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, meta...)
	if err := c.WriteMessage(rtmp.Message{Type: rtmp.TypeDataAMF0, StreamID: c.StreamID(), Payload: body}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "onMetaData's encoder", func() bool {
		return encoder() == "obs-output module (libobs version 30.1.2)"
	})
	si, _ := env.hub.Stream("live/obs")
	if si.Publisher.RemoteAddr == "" || si.Publisher.Protocol != "rtmp" {
		t.Fatalf("publisher %+v", si.Publisher)
	}
}
