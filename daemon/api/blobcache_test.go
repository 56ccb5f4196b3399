package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

// TestBlobCache: a base layer streamed once is kept, checked, in the
// store, and the next pull of it does not reach the upstream; a blob that
// did not match its digest is never kept. (Moved down from daemon/, where
// it went through daemon.New: the same assertions.)
func TestBlobCache(t *testing.T) {
	reg := regtest.Registry()
	var corrupt atomic.Value // digest path whose next GET is corrupted
	corrupt.Store("")
	e := newStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := corrupt.Load().(string); p != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, p) {
			corrupt.Store("")
			rec := &capture{header: http.Header{}}
			reg.ServeHTTP(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			b := rec.body.Bytes()
			b[len(b)/2] ^= 0xff
			w.WriteHeader(rec.status)
			w.Write(b)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	base := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	e.push(t, "test/img", "latest", base)
	ref := regtest.MustRef(t, e.through("test/img")+":latest")
	ls, _ := base.Layers()
	d0, _ := ls[0].Digest()
	d1, _ := ls[1].Digest()
	blobURL := func(d v1.Hash) string {
		return e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/img/blobs/" + d.String()
	}

	// The first layer comes corrupted once: the client gets an error (an
	// OCI error, as the blob fits in the chunk held back, or a cut), and
	// nothing is kept.
	corrupt.Store(d0.String())
	resp, err := http.Get(blobURL(d0))
	status := 0
	if err == nil {
		status = resp.StatusCode
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil && status == http.StatusOK {
		t.Fatal("a corrupted blob was served whole")
	}
	e.reg.Wait()

	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	e.reg.Wait()
	e.count.Reset()
	img, err = remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("second pull: %v", err)
	}
	if n := e.count.Get("GET blob"); n != 0 {
		t.Errorf("the second pull fetched %d blobs upstream, want 0: all are cached", n)
	}
	for _, d := range []v1.Hash{d0, d1} {
		resp, err := http.Get(blobURL(d))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if sum, _, _ := v1.SHA256(bytes.NewReader(got)); sum != d {
			t.Errorf("cached blob %s reads back as %s", d, sum)
		}
	}
}

// capture records a response.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *capture) Header() http.Header         { return c.header }
func (c *capture) WriteHeader(s int)           { c.status = s }
func (c *capture) Write(b []byte) (int, error) { return c.body.Write(b) }
