package hlsorigin

import (
	"bytes"
	"context"

	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Params configures an S3Backend.
type S3Params struct {
	// Endpoint is the S3 endpoint URL, http(s)://host[:port].
	Endpoint string
	// Region is the bucket's region (empty: asked from the endpoint).
	Region string
	Bucket string
	// Prefix is put before every key (empty, or ending in "/").
	Prefix    string
	AccessKey string
	SecretKey string
}

// S3Backend stores objects in an S3-compatible bucket. An S3 PUT is atomic
// (a reader sees the old object or the whole new one), so Put writes
// directly; the origin orders the writes (segment before playlist).
type S3Backend struct {
	c      *minio.Client
	bucket string
	prefix string
}

var _ Backend = (*S3Backend)(nil)

// s3PartSize bounds the buffer of a body of unknown length (chunked
// uploads): bodies up to it are one PUT, longer ones a multipart upload
// completed only when the whole body arrived.
const s3PartSize = 16 << 20

// NewS3Backend connects to the endpoint and checks that the bucket exists.
func NewS3Backend(ctx context.Context, p S3Params) (*S3Backend, error) {
	u, err := url.Parse(p.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("s3 endpoint: want http(s)://host[:port]")
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(p.AccessKey, p.SecretKey, ""),
		Secure: u.Scheme == "https", Region: p.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	ok, err := c.BucketExists(ctx, p.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %q at %s: %w", p.Bucket, u.Host, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %q does not exist at %s: create it first", p.Bucket, u.Host)
	}
	return &S3Backend{c: c, bucket: p.Bucket, prefix: p.Prefix}, nil
}

func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == minio.NoSuchKey || code == "NotFound"
}

func (b *S3Backend) info(key string, oi minio.ObjectInfo) Info {
	return Info{Key: key, Size: oi.Size, ModTime: oi.LastModified, ETag: `"` + strings.Trim(oi.ETag, `"`) + `"`}
}

// Put uploads r under key: a body up to s3PartSize is read first and sent
// as one PUT with its length (segments, playlists); a longer one goes on
// as a multipart upload, which S3 completes only after its last part.
func (b *S3Backend) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	head, err := io.ReadAll(io.LimitReader(r, s3PartSize))
	if err != nil {
		return Info{}, fmt.Errorf("s3 put %s: %w", key, err)
	}
	var body io.Reader = bytes.NewReader(head)
	size := int64(len(head))
	if size == s3PartSize {
		body, size = io.MultiReader(body, r), -1
	}
	ui, err := b.c.PutObject(ctx, b.bucket, b.prefix+key, body, size, minio.PutObjectOptions{PartSize: s3PartSize,
		ContentType: "application/octet-stream"})
	if err != nil {
		return Info{}, fmt.Errorf("s3 put %s: %w", key, err)
	}
	return Info{Key: key, Size: ui.Size, ModTime: ui.LastModified, ETag: `"` + strings.Trim(ui.ETag, `"`) + `"`}, nil
}

// Open fetches key with one GET, so the bytes and the Info come from one
// version of the object even while it is being overwritten. The returned
// reader reads that response on; a seek elsewhere reopens with a ranged
// GET that must match the ETag (http.ServeContent seeks for Range).
//
// minio.Object would HEAD first and GET with If-Match second: a playlist
// overwritten between the two failed the read (412), about one read in
// seven under a writer rewriting it as fast as it could.
func (b *S3Backend) Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	body, oi, _, err := minio.Core{Client: b.c}.GetObject(ctx, b.bucket, b.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil, Info{}, ErrNotFound
		}
		return nil, Info{}, fmt.Errorf("s3 get %s: %w", key, err)
	}
	in := b.info(key, oi)
	return &s3Reader{b: b, ctx: ctx, key: key, etag: oi.ETag, size: oi.Size, body: body}, in, nil
}

// s3Reader reads one version of an object: sequentially from the first
// GET's body, and from ranged GETs pinned to its ETag after a seek.
type s3Reader struct {
	b    *S3Backend
	ctx  context.Context
	key  string
	etag string
	size int64

	body    io.ReadCloser // nil after a seek away from bodyPos
	bodyPos int64         // offset body reads next
	pos     int64         // offset the caller reads next
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.body == nil || r.bodyPos != r.pos {
		if r.body != nil {
			_ = r.body.Close()
			r.body = nil
		}
		opts := minio.GetObjectOptions{}
		if err := opts.SetMatchETag(r.etag); err != nil {
			return 0, err
		}
		if err := opts.SetRange(r.pos, r.size-1); err != nil {
			return 0, err
		}
		body, _, _, err := minio.Core{Client: r.b.c}.GetObject(r.ctx, r.b.bucket, r.b.prefix+r.key, opts)
		if err != nil {
			return 0, fmt.Errorf("s3 get %s at %d: %w", r.key, r.pos, err)
		}
		r.body, r.bodyPos = body, r.pos
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	r.bodyPos += int64(n)
	if err == io.EOF && r.pos < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *s3Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return r.pos, fmt.Errorf("s3 seek: bad whence %d", whence)
	}
	if offset < 0 {
		return r.pos, fmt.Errorf("s3 seek: negative offset %d", offset)
	}
	r.pos = offset
	return offset, nil
}

func (r *s3Reader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// Stat describes key.
func (b *S3Backend) Stat(ctx context.Context, key string) (Info, error) {
	oi, err := b.c.StatObject(ctx, b.bucket, b.prefix+key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	return b.info(key, oi), nil
}

// Delete removes key.
func (b *S3Backend) Delete(ctx context.Context, key string) error {
	err := b.c.RemoveObject(ctx, b.bucket, b.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && isNotFound(err) {
		return nil
	}
	return err
}

// List lists the keys under prefix.
func (b *S3Backend) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	for oi := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			if isNotFound(oi.Err) {
				return out, nil
			}
			return nil, oi.Err
		}
		key := strings.TrimPrefix(oi.Key, b.prefix)
		if strings.HasSuffix(key, "/") {
			continue // a directory marker
		}
		out = append(out, b.info(key, oi))
	}
	return out, nil
}
