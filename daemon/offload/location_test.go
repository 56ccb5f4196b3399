package offload_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/offload"
)

// gated holds every OpenBlob until open is closed: an upload still
// running, as long as the test likes.
type gated struct {
	offload.Blobs
	open chan struct{}
}

func (g gated) OpenBlob(h v1.Hash) (*os.File, error) {
	<-g.open
	return g.Blobs.OpenBlob(h)
}

// TestLocation: no URL while the upload runs; then a presigned URL that a
// plain GET downloads with the blob's digest, valid for presign_ttl and no
// longer.
func TestLocation(t *testing.T) {
	f := newFixture(t, 3000)
	d := f.digests()[0]
	opts := f.options(config.Offload{PresignTTL: "2s"})
	g := gated{Blobs: f.st, open: make(chan struct{})}
	opts.Blobs = g
	o, err := offload.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := o.Location(t.Context(), d); ok {
		t.Fatalf("Location before any upload = %q", u)
	}
	o.Upload(t.Context(), d)
	if u, ok := o.Location(t.Context(), d); ok || o.Status(d).State != offload.Pending {
		t.Fatalf("Location while uploading = %q, %v (%v)", u, ok, o.Status(d).State)
	}
	close(g.open)
	wait(t, o)
	u, ok := o.Location(t.Context(), d)
	if !ok {
		t.Fatalf("no Location after the upload: %v", o.Status(d))
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Query().Get("X-Amz-Expires") != "2" || !strings.HasSuffix(pu.Path, "/layers/dev/alice/blobs/sha256/"+d.Hex) {
		t.Fatalf("URL %s (%v): want a path-style presigned URL valid 2 s", u, err)
	}
	if got := get(t, u); got.status != http.StatusOK || got.digest != d {
		t.Fatalf("GET: %d, digest %s; want 200 and %s", got.status, got.digest, d)
	}
	time.Sleep(3 * time.Second)
	if got := get(t, u); got.status != http.StatusForbidden {
		t.Fatalf("GET after presign_ttl: %d, want 403", got.status)
	}
	if u2, ok := o.Location(t.Context(), d); !ok || get(t, u2).digest != d {
		t.Fatalf("a fresh Location after the first expired: %q %v", u2, ok)
	}
}

type got struct {
	status int
	digest v1.Hash
}

func get(t *testing.T, u string) got {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h, _, err := v1.SHA256(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return got{status: resp.StatusCode, digest: h}
}

// TestLocationRecheck: an object removed from the store (a lifecycle rule)
// is not handed out once the recheck is due, and is uploaded again.
func TestLocationRecheck(t *testing.T) {
	f := newFixture(t, 2000)
	d := f.digests()[0]
	opts := f.options(config.Offload{})
	opts.Recheck = time.Nanosecond
	o, err := offload.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	o.Upload(t.Context(), d)
	wait(t, o)
	if err := os.Remove(f.objectPath(d)); err != nil {
		t.Fatal(err)
	}
	if u, ok := o.Location(t.Context(), d); ok {
		t.Fatalf("Location of an object gone = %q", u)
	}
	wait(t, o)
	if _, ok := o.Location(t.Context(), d); !ok {
		t.Fatalf("not uploaded again: %v", o.Status(d))
	}
	if _, err := os.Stat(f.objectPath(d)); err != nil {
		t.Fatal(err)
	}
}

// TestStoreFails: a store that is down or refuses records a failure, with
// its reason, for every digest; Location says no; one warning and one
// event per kind of failure; nothing blocks. A later request retries,
// after the backoff, and succeeds once the store works.
func TestStoreFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	for _, tt := range []struct {
		name string
		cfg  config.Offload
		env  map[string]string
		kind string
	}{
		{name: "down", cfg: config.Offload{Endpoint: closed}, kind: "Unreachable"},
		{name: "wrong secret", env: map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong"}, kind: "AccessDenied"},
		{name: "no bucket", cfg: config.Offload{URL: "s3://missing/x"}, kind: "NoSuchBucket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 100, 200, 300)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			sub := f.bus.Subscribe(16)
			o := f.offload(t, tt.cfg)
			o.Upload(t.Context(), f.digests()...)
			wait(t, o)
			for _, d := range f.digests() {
				if s := o.Status(d); s.State != offload.Failed || s.Err == nil {
					t.Errorf("%s: %v %v, want failed with a reason", d, s.State, s.Err)
				}
				if u, ok := o.Location(t.Context(), d); ok {
					t.Errorf("Location = %q with the store failing", u)
				}
			}
			log := f.log.String()
			if n := strings.Count(log, "level=WARN"); n != 1 || !strings.Contains(log, "kind="+tt.kind) {
				t.Errorf("%d warnings, want 1 of kind %s:\n%s", n, tt.kind, log)
			}
			var failed int
			for len(sub.C()) > 0 {
				if e := (<-sub.C()).(event.OffloadStatus); e.State == event.OffloadFailed && e.Kind == tt.kind && e.Err != "" {
					failed++
				}
			}
			if failed != 1 {
				t.Errorf("%d failure events of kind %s, want 1", failed, tt.kind)
			}
		})
	}
}

// TestRetryAfterFailure: a failed upload is tried again by a request once
// the backoff ends, and by the next generation's Upload at once.
func TestRetryAfterFailure(t *testing.T) {
	for _, tt := range []struct {
		name  string
		retry func(o *offload.Offload, d v1.Hash)
	}{
		{"next request", func(o *offload.Offload, d v1.Hash) { o.Location(t.Context(), d) }},
		{"next generation", func(o *offload.Offload, d v1.Hash) { o.Upload(t.Context(), d) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 500)
			d := f.digests()[0]
			opts := f.options(config.Offload{URL: "s3://later/p"})
			opts.Backoff = time.Millisecond
			if tt.name == "next generation" {
				opts.Backoff = time.Hour // only Upload may retry
			}
			o, err := offload.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			o.Upload(t.Context(), d)
			wait(t, o)
			if s := o.Status(d); s.State != offload.Failed {
				t.Fatalf("status %v before the bucket exists", s.State)
			}
			f.srv.Bucket(t, "later")
			time.Sleep(5 * time.Millisecond)
			tt.retry(o, d)
			wait(t, o)
			u, ok := o.Location(t.Context(), d)
			if !ok {
				t.Fatalf("not retried: %v", o.Status(d))
			}
			if resp, err := http.Get(u); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: %v", u, err)
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if !strings.Contains(f.log.String(), "works again") {
				t.Errorf("no recovery in the log:\n%s", f.log.String())
			}
		})
	}
}

// TestLocationRecheckMerged: the checks of one blob that fall due together
// (a cluster's nodes pulling at once) are one HEAD to the store, and each
// caller gets the URL.
func TestLocationRecheckMerged(t *testing.T) {
	f := newFixture(t, 2000)
	d := f.digests()[0]
	target, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// In front of the store: counts HEADs and holds each for a while, so
	// that the callers' checks overlap however the machine schedules them.
	var heads atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
			time.Sleep(500 * time.Millisecond)
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	opts := f.options(config.Offload{Endpoint: front.URL})
	opts.Recheck = time.Hour
	o, err := offload.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	o.Upload(t.Context(), d)
	wait(t, o)
	if _, ok := o.Location(t.Context(), d); !ok {
		t.Fatalf("Location after the upload: %v", o.Status(d))
	}
	before := heads.Load()
	// Make the check due for everyone at once.
	o.ExpireChecks()

	const callers = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	oks := make(chan bool, callers)
	for range callers {
		wg.Go(func() {
			<-start
			_, ok := o.Location(t.Context(), d)
			oks <- ok
		})
	}
	close(start)
	wg.Wait()
	close(oks)
	for ok := range oks {
		if !ok {
			t.Fatal("a caller got no URL for a blob that is in the store")
		}
	}
	// One is the design; two allows a caller the machine started after
	// the first HEAD's 500 ms. Without the merge it is one a caller.
	if n := heads.Load() - before; n < 1 || n > 2 {
		t.Fatalf("%d callers made %d HEADs to the store, want 1", callers, n)
	}
}
