package stream

import (
	"testing"
	"time"
)

// EndPublish ends only the publish whose tag it names: a newer publisher of
// the path (a takeover) is left alone.
func TestEndPublishByTag(t *testing.T) {
	h := NewHub(HubParams{PublisherGrace: -1})
	defer h.Close()
	p1, err := h.Publish("live/a", PublisherInfo{Tag: "7/1"})
	if err != nil {
		t.Fatal(err)
	}
	if h.EndPublish("live/a", "7/2") || h.EndPublish("live/b", "7/1") {
		t.Fatal("ended a publish of another tag or path")
	}
	p2, err := h.Publish("live/a", PublisherInfo{Tag: "7/2", Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	if h.EndPublish("live/a", "7/1") {
		t.Fatal("ended the newer publisher with the older one's tag")
	}
	select {
	case <-p1.Done():
	case <-time.After(time.Second):
		t.Fatal("the taken-over publisher is not done")
	}
	if !h.EndPublish("live/a", "7/2") {
		t.Fatal("did not end the publish of its tag")
	}
	select {
	case <-p2.Done():
	case <-time.After(time.Second):
		t.Fatal("the ended publisher's Done is not closed")
	}
	if si, ok := h.Stream("live/a"); ok && si.Live {
		t.Fatal("the path still has a publisher")
	}
}
