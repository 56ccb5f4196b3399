package proxy_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// uploads records what Blobs hands its Uploader.
type uploads struct {
	mu sync.Mutex
	ds []v1.Hash
}

func (u *uploads) Upload(ds ...v1.Hash) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ds = append(u.ds, ds...)
}

func (u *uploads) got() []v1.Hash {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.ds)
}

// TestBlobsUploadKept: in redirect mode, an upstream blob that streamed
// (whole, or cut into a range from the verified whole) goes to the
// Uploader once it is kept; a blob the upstream redirected, a HEAD, and
// every blob in stream mode (the local handler's) do not.
func TestBlobsUploadKept(t *testing.T) {
	const blob = "an upstream blob, 34 bytes long..."
	d, _, _ := v1.SHA256(strings.NewReader(blob))
	for _, tt := range []struct {
		name       string
		mode       proxy.BlobMode
		redirects  bool // the upstream answers with a 307 to its storage
		method     string
		rng        string
		wantUpload bool
	}{
		{"redirect mode, upstream streams", proxy.BlobRedirect, false, http.MethodGet, "", true},
		{"redirect mode, upstream streams, a range", proxy.BlobRedirect, false, http.MethodGet, "bytes=0-3", true},
		{"redirect mode, upstream redirects", proxy.BlobRedirect, true, http.MethodGet, "", false},
		{"redirect mode, HEAD", proxy.BlobRedirect, false, http.MethodHead, "", false},
		{"stream mode", proxy.BlobStream, false, http.MethodGet, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var repo proxy.Repo
			p := dialpolicy.New("local", dialpolicy.AnyHost)
			if tt.redirects {
				u := newStorageUpstream(t)
				u.pushBlob("test/img", blob)
				repo = u.repo("test/img")
			} else {
				u := newUpstream(t)
				u.pushBlob("test/img", blob)
				repo = u.repo("test/img")
			}
			up := &uploads{}
			b, _ := blobsFor(t, p, tt.mode, proxy.WithUploader(up))
			if _, _, err := get(t, b, repo, d, tt.method, tt.rng); err != nil {
				t.Fatal(err)
			}
			b.Wait()
			got := up.got()
			if want := tt.wantUpload; want != slices.Equal(got, []v1.Hash{d}) || (!want && len(got) != 0) {
				t.Errorf("uploaded %v, want upload %v of %s", got, want, d)
			}
		})
	}
}
