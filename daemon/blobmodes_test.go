package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon/config"
)

// redirectingUpstream is a registry that answers blob GETs as S3-backed
// ones do, with a 307 to a signed URL on its storage server; storageHits
// counts the blob GETs that storage answered.
func redirectingUpstream(t *testing.T) (up, storage *httptest.Server, storageHits *atomic.Int64) {
	reg := registry.New(registry.Logger(quiet))
	storageHits = &atomic.Int64{}
	storage = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storageHits.Add(1)
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = ""
		reg.ServeHTTP(w, r2)
	}))
	t.Cleanup(storage.Close)
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			http.Redirect(w, r, storage.URL+r.URL.Path+"?X-Amz-Signature=signed", http.StatusTemporaryRedirect)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	return up, storage, storageHits
}

// noFollow sends an anonymous blob GET and returns the answer as it is.
func noFollow(t *testing.T, url string) *http.Response {
	t.Helper()
	return noFollowDo(t, http.MethodGet, url)
}

// noFollowDo is noFollow for any method.
func noFollowDo(t *testing.T, method, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer anonymous")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestPublicBlobRedirects: through the public handler, a base layer is a
// 307 to the upstream's signed URL, and the daemon never reads it; the
// injected layer and the rewritten config come from the store; the local
// handler streams. blobs.public: stream streams, the control.
func TestPublicBlobRedirects(t *testing.T) {
	for _, mode := range []string{config.BlobsRedirect, config.BlobsStream} {
		t.Run(mode, func(t *testing.T) {
			up, storage, storageHits := redirectingUpstream(t)
			img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
			if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Blobs.Public = mode
			// The storage server is on loopback: named, like the registry.
			cfg.Public.AnonymousRegistries = []string{host(up), host(storage)}
			s := servePublic(t, cfg, authn.NewMultiKeychain())
			served, err := remote.Image(mustRef(t, s.public+"/"+under(host(up))+"/test/img:latest"))
			if err != nil {
				t.Fatal(err)
			}
			base, _ := img.Layers()
			layers, _ := served.Layers()
			cfgDigest, _ := served.ConfigName()
			storageHits.Store(0)
			blobURL := func(h string, d v1.Hash) string {
				return "http://" + h + "/v2/" + under(host(up)) + "/test/img/blobs/" + d.String()
			}
			for i, l := range layers {
				d, _ := l.Digest()
				resp := noFollow(t, blobURL(s.public, d))
				injected := i >= len(base)
				switch {
				case injected && resp.StatusCode != http.StatusOK:
					t.Errorf("injected layer %s: %d, want 200 from the store", d, resp.StatusCode)
				case !injected && mode == config.BlobsRedirect:
					want := storage.URL + "/v2/test/img/blobs/" + d.String() + "?X-Amz-Signature=signed"
					if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
						t.Errorf("base layer %s: %d to %q, want 307 to %q", d, resp.StatusCode, resp.Header.Get("Location"), want)
					}
				case !injected && resp.StatusCode != http.StatusOK:
					t.Errorf("base layer %s: %d, want it streamed", d, resp.StatusCode)
				}
			}
			if resp := noFollow(t, blobURL(s.public, cfgDigest)); resp.StatusCode != http.StatusOK {
				t.Errorf("rewritten config: %d, want 200 from the store", resp.StatusCode)
			}
			wantHits := int64(len(base))
			if mode == config.BlobsRedirect {
				wantHits = 0
			}
			if n := storageHits.Load(); n != wantHits {
				t.Errorf("the daemon read %d blobs from storage, want %d", n, wantHits)
			}
			// A registry client pulls the whole image, following the
			// redirects, and checks every digest.
			if err := validate.Image(served); err != nil {
				t.Errorf("pull through the public handler: %v", err)
			}
			// The local handler streams, whatever the public mode.
			d, _ := base[0].Digest()
			if resp := noFollow(t, blobURL(s.local, d)); resp.StatusCode != http.StatusOK {
				t.Errorf("local handler: %d, want the blob streamed", resp.StatusCode)
			}
		})
	}
}
