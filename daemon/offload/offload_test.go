package offload_test

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/offload"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// fixture is a content store with blobs, and an offload store.
type fixture struct {
	st     *store.Store
	blobs  map[v1.Hash][]byte
	srv    *s3test.Server
	bucket string
	log    *syncbuf.Buffer
	bus    *event.Bus
}

// newFixture stores blobs of the given sizes (one over a multipart part)
// and starts versitygw with a bucket, the AWS variables set to its
// account as a developer's shell would have them.
func newFixture(t *testing.T, sizes ...int) *fixture {
	t.Helper()
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, blobs: map[v1.Hash][]byte{}, srv: srv, bucket: srv.Bucket(t, "layers"), log: &syncbuf.Buffer{}, bus: event.NewBus(nil)}
	for _, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		h, err := st.PutBytes(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		f.blobs[h] = b
	}
	return f
}

func (f *fixture) digests() []v1.Hash {
	var out []v1.Hash
	for h := range f.blobs {
		out = append(out, h)
	}
	return out
}

// options are the fixture's offload options over cfg's URL and endpoint.
func (f *fixture) options(cfg config.Offload) offload.Options {
	if cfg.URL == "" {
		cfg.URL = "s3://" + f.bucket + "/dev/alice"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = f.srv.URL
	}
	return offload.Options{Config: cfg, Blobs: f.st, Bus: f.bus,
		Log: slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelInfo}))}
}

func (f *fixture) offload(t *testing.T, cfg config.Offload) *offload.Offload {
	t.Helper()
	o, err := offload.New(f.options(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// wait waits for the uploads, within a bound: an offload must never hang.
func wait(t *testing.T, o *offload.Offload) {
	t.Helper()
	done := make(chan struct{})
	go func() { o.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the uploads did not finish in 30 s")
	}
}

// objectPath is where versitygw keeps d's object.
func (f *fixture) objectPath(d v1.Hash) string {
	return filepath.Join(f.srv.Dir, f.bucket, "dev", "alice", "blobs", "sha256", d.Hex)
}

// TestUploadContentAddressed: a generation's blobs land under
// prefix/blobs/sha256/<hex> with their bytes, one of them in parts, and
// each upload is an event.
func TestUploadContentAddressed(t *testing.T) {
	f := newFixture(t, 1000, 17<<20)
	sub := f.bus.Subscribe(16)
	o := f.offload(t, config.Offload{})
	o.Upload(t.Context(), f.digests()...)
	wait(t, o)
	for d, want := range f.blobs {
		got, err := os.ReadFile(f.objectPath(d))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want the blob's %d", d, len(got), err, len(want))
		}
		if s := o.Status(d); s.State != offload.Uploaded || s.Size != int64(len(want)) {
			t.Errorf("%s: status %v %d %v", d, s.State, s.Size, s.Err)
		}
	}
	for range f.blobs {
		select {
		case e := <-sub.C():
			if s, ok := e.(event.OffloadStatus); !ok || s.State != event.OffloadUploaded {
				t.Errorf("event %#v, want OffloadStatus uploaded", e)
			}
		default:
			t.Fatal("an upload published no event")
		}
	}
}

// TestUploadNeverOverwrites: an object already there with the blob's size
// counts as uploaded and is left as it is, by a second daemon too; one of
// another size is a failure, and left as it is too.
func TestUploadNeverOverwrites(t *testing.T) {
	f := newFixture(t, 4096)
	d := f.digests()[0]
	first := f.offload(t, config.Offload{})
	first.Upload(t.Context(), d)
	wait(t, first)
	key := first.Key(d)
	before, err := f.srv.Client.StatObject(t.Context(), f.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a rewrite would show in a second's mtime
	second := f.offload(t, config.Offload{})
	second.Upload(t.Context(), d)
	wait(t, second)
	after, err := f.srv.Client.StatObject(t.Context(), f.bucket, key, minio.StatObjectOptions{})
	if err != nil || after.ETag != before.ETag || !after.LastModified.Equal(before.LastModified) || second.Status(d).State != offload.Uploaded {
		t.Fatalf("second upload: %v %v -> %v %v (%v), status %v", before.ETag, before.LastModified, after.ETag, after.LastModified, err, second.Status(d))
	}

	// Someone else's object under the key: not the blob, not overwritten.
	g := newFixture(t, 4096)
	d = g.digests()[0]
	g.srv.WriteObject(t, g.bucket, "dev/alice/blobs/sha256/"+d.Hex, []byte("not the blob"))
	third := g.offload(t, config.Offload{})
	third.Upload(t.Context(), d)
	wait(t, third)
	if s := third.Status(d); s.State != offload.Failed || s.Err == nil || !strings.Contains(s.Err.Error(), "not overwritten") {
		t.Errorf("status %v %v, want failed: not overwritten", s.State, s.Err)
	}
	if b, _ := os.ReadFile(g.objectPath(d)); string(b) != "not the blob" {
		t.Errorf("the object was overwritten: %d bytes", len(b))
	}
	if _, ok := third.Location(t.Context(), d); ok {
		t.Error("Location handed out an object that is not the blob")
	}
}
