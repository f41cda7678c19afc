package hlsorigin

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/portier/portier/tests/peers"
)

// testBackend checks the Backend contract on b.
func testBackend(t *testing.T, b Backend) {
	ctx := context.Background()
	if _, err := b.Stat(ctx, "s/1/v0/none.ts"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat(absent) = %v, want ErrNotFound", err)
	}
	if _, _, err := b.Open(ctx, "s/1/v0/none.ts"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(absent) = %v, want ErrNotFound", err)
	}
	in, err := b.Put(ctx, "s/1/v0/a.ts", strings.NewReader("hello world"))
	if err != nil || in.Size != 11 || in.ETag == "" {
		t.Fatalf("Put = %+v, %v", in, err)
	}
	rc, info, err := b.Open(ctx, "s/1/v0/a.ts")
	if err != nil || info.Size != 11 || info.ETag == "" || info.ModTime.IsZero() {
		t.Fatalf("Open = %+v, %v", info, err)
	}
	if _, err := rc.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "world" {
		t.Errorf("read after seek = %q", got)
	}
	// A failing body leaves the old object in place (atomic writes).
	if _, err := b.Put(ctx, "s/1/v0/a.ts", io.MultiReader(strings.NewReader("partial"), failing{})); err == nil {
		t.Fatal("Put with a failing body succeeded")
	}
	if in2, err := b.Stat(ctx, "s/1/v0/a.ts"); err != nil || in2.Size != 11 {
		t.Errorf("after a failed Put: %+v, %v; want the old 11 bytes", in2, err)
	}
	if _, err := b.Put(ctx, "s/1/master.m3u8", strings.NewReader("#EXTM3U\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "s/2/v0/b.ts", strings.NewReader("b")); err != nil {
		t.Fatal(err)
	}
	list, err := b.List(ctx, "s/1/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range list {
		keys = append(keys, in.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"s/1/master.m3u8", "s/1/v0/a.ts"}) {
		t.Errorf("List(s/1/) = %v", keys)
	}
	if err := b.Delete(ctx, "s/1/v0/a.ts"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "s/1/v0/a.ts"); err != nil {
		t.Errorf("Delete(absent) = %v", err)
	}
	if _, err := b.Stat(ctx, "s/1/v0/a.ts"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete = %v", err)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("client went away") }

func TestFSBackend(t *testing.T) {
	b, err := NewFSBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testBackend(t, b)
}

// The S3 backend against a real S3 server (versitygw, posix backend).
func TestS3Backend(t *testing.T) {
	g := peers.StartVersityGW(t)
	g.CreateBucket(t, "media")
	ctx := context.Background()
	if _, err := NewS3Backend(ctx, S3Params{Endpoint: g.Endpoint(), Bucket: "nope", AccessKey: g.AccessKey, SecretKey: g.SecretKey}); err == nil {
		t.Error("a missing bucket was accepted")
	}
	b, err := NewS3Backend(ctx, S3Params{Endpoint: g.Endpoint(), Bucket: "media", Prefix: "live/", AccessKey: g.AccessKey, SecretKey: g.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	testBackend(t, b)
	// A body past one part goes up as a multipart upload.
	big := strings.Repeat("x", s3PartSize+1000)
	if in, err := b.Put(ctx, "s/3/v0/big.ts", strings.NewReader(big)); err != nil || in.Size != int64(len(big)) {
		t.Fatalf("multipart Put = %+v, %v", in, err)
	}
	if in, err := b.Stat(ctx, "s/3/v0/big.ts"); err != nil || in.Size != int64(len(big)) {
		t.Fatalf("Stat after multipart = %+v, %v", in, err)
	}
}
