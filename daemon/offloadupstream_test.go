package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
)

// TestOffloadUpstreamBlobs: with offload.upstream_blobs, a base layer
// whose upstream streams (no redirect) is streamed to the first public
// client, verified, kept, and uploaded; the next public GET of it is a 307
// to the offload store, whose URL serves the layer's bytes. A repository
// it was never linked to for the audience is not redirected. Without
// upstream_blobs, the next GET streams from the store again: the control.
func TestOffloadUpstreamBlobs(t *testing.T) {
	for _, tt := range []struct {
		name          string
		upstreamBlobs bool
	}{
		{"upstream_blobs", true},
		{"injected layers only", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, off := offloadStore(t)
			up := httptest.NewServer(registry.New(registry.Logger(quiet))) // streams its blobs
			t.Cleanup(up.Close)
			img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
			if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Offload = off
			cfg.Offload.UpstreamBlobs = tt.upstreamBlobs
			cfg.Public.AnonymousRegistries = []string{host(up)}
			d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(),
				Layer: testLayer(), LayerSource: "test", Keychain: authn.NewMultiKeychain()})
			if err != nil {
				t.Fatal(err)
			}
			_, public := serveDaemon(t, d)
			if _, err := remote.Get(mustRef(t, strings.TrimPrefix(public, "http://")+"/"+pathHost(up)+"/test/img:latest")); err != nil {
				t.Fatal(err)
			}
			base, _ := img.Layers()
			dg, _ := base[0].Digest()
			blob := public + "/v2/" + pathHost(up) + "/test/img/blobs/" + dg.String()
			if resp := noFollow(t, blob); resp.StatusCode != http.StatusOK {
				t.Fatalf("first public GET: %d, want the blob streamed (the upstream does not redirect)", resp.StatusCode)
			}
			d.WaitIdle() // the blob is kept, and its upload started
			if !tt.upstreamBlobs {
				if u, ok := d.Offload().Location(t.Context(), dg); ok {
					t.Errorf("an upstream blob was offloaded without upstream_blobs: %s", u)
				}
				if resp := noFollow(t, blob); resp.StatusCode != http.StatusOK {
					t.Errorf("second public GET: %d, want 200 from the store", resp.StatusCode)
				}
				return
			}
			waitOffloaded(t, d, dg) // and its presigned URL serves the blob
			resp := noFollow(t, blob)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect ||
				!strings.HasPrefix(loc, srv.URL+"/layers/dev/blobs/sha256/"+dg.Hex) {
				t.Errorf("second public GET: %d to %q, want 307 to the offload store", resp.StatusCode, loc)
			}
			other := public + "/v2/" + pathHost(up) + "/other/img/blobs/" + dg.String()
			if resp := noFollow(t, other); resp.StatusCode == http.StatusTemporaryRedirect {
				t.Errorf("a blob never linked to another repository was redirected to the offload store")
			}
		})
	}
}
