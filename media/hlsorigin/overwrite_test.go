package hlsorigin

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// A playlist rewritten while players read it: every read returns one whole
// version (S3 overwrites are atomic), never an error.
func TestS3ReadWhileOverwriting(t *testing.T) {
	g := peers.StartVersityGW(t)
	g.CreateBucket(t, "media")
	ctx := context.Background()
	b, err := NewS3Backend(ctx, S3Params{Endpoint: g.Endpoint(), Bucket: "media", AccessKey: g.AccessKey, SecretKey: g.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	version := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 2000+i%7*100) }
	if _, err := b.Put(ctx, "s/1/v0/index.m3u8", strings.NewReader(version(0))); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.Put(ctx, "s/1/v0/index.m3u8", strings.NewReader(version(i))); err != nil {
				t.Errorf("put %d: %v", i, err)
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	reads, fails := 0, 0
	for time.Now().Before(deadline) {
		rc, _, err := b.Open(ctx, "s/1/v0/index.m3u8")
		if err == nil {
			var body []byte
			body, err = io.ReadAll(rc)
			rc.Close()
			if err == nil && (len(body) == 0 || strings.Trim(string(body), string(body[:1])) != "") {
				t.Fatalf("read an empty body or a mix of versions: %q...", body[:min(len(body), 40)])
			}
		}
		reads++
		if err != nil {
			fails++
			t.Logf("read %d: %v", reads, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reads, %d failed", reads, fails)
	if fails > 0 {
		t.Errorf("%d of %d reads failed", fails, reads)
	}
}
