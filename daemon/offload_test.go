package daemon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/s3test"
)

// TestOffloadGenerations: the first generation's layers, every
// platform's, are uploaded when the daemon packs them, and a re-pack's
// new generation is uploaded too, though the request that asked for it
// ended at once; Location then redirects to bytes with the right digest.
func TestOffloadGenerations(t *testing.T) {
	srv, off := offloadStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"foo.txt": "one", ".platforms/linux_arm64/.towerreg/entry*": "#!arm64\n"})
	cfg := config.Default()
	cfg.Offload = off
	d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, CacheDir: t.TempDir(), LayerDir: dir, LayerSource: dir})
	if err != nil {
		t.Fatal(err)
	}
	gen1 := d.Generation().Set
	if len(gen1.Platforms) != 1 {
		t.Fatalf("platforms %v, want linux_arm64", gen1.Platforms)
	}
	waitOffloaded(t, d, gen1.Common.GzipDigest, gen1.Platforms["linux_arm64"].GzipDigest)

	if err := os.WriteFile(filepath.Join(dir, "foo.txt"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9090"+admin.ReloadPath, nil)
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithCancel(t.Context())
	d.Handler().ServeHTTP(rec, req.WithContext(ctx))
	cancel() // the request is over; the uploads it started are not
	if rec.Code != http.StatusNoContent || d.Generation().Number != 2 {
		t.Fatalf("re-pack: %d %s, generation %d", rec.Code, rec.Body, d.Generation().Number)
	}
	gen2 := d.Generation().Set
	waitOffloaded(t, d, gen2.Common.GzipDigest, gen2.Platforms["linux_arm64"].GzipDigest)
	if _, err := os.Stat(filepath.Join(srv.Dir, "layers", "dev", "blobs", "sha256", gen2.Common.GzipDigest.Hex)); err != nil {
		t.Errorf("the new common layer is not content-addressed under the prefix: %v", err)
	}
}

// offloadStore starts an S3 server with a bucket "layers" and gives the
// offload config for its prefix "dev", with the server's credentials in
// the environment, as the AWS variables carry them.
func offloadStore(t *testing.T) (*s3test.Server, config.Offload) {
	t.Helper()
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "layers")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	return srv, config.Offload{URL: "s3://" + bucket + "/dev", Endpoint: srv.URL}
}

// waitOffloaded waits until each digest has a Location, and downloads it.
func waitOffloaded(t *testing.T, d *daemon.Daemon, digests ...v1.Hash) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, want := range digests {
		u, ok := d.Offload().Location(t.Context(), want)
		for ; !ok; u, ok = d.Offload().Location(t.Context(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not offloaded in 30 s", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := v1.SHA256(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || got != want {
			t.Fatalf("GET %s: %d, digest %s (%v), want %s", u, resp.StatusCode, got, err, want)
		}
	}
}

// TestOffloadOff: without an offload store, every blob streams.
func TestOffloadOff(t *testing.T) {
	d, err := daemon.New(t.Context(), daemon.Options{Config: config.Default(), CacheDir: t.TempDir(), Layer: testLayer(), LayerSource: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := d.Offload().Location(t.Context(), d.Generation().Set.Common.GzipDigest); ok {
		t.Fatalf("Location without an offload store = %q", u)
	}
}

// TestPublicOffloadRedirect: once the injected layer is in the offload
// store, a public client's GET of it is a 307 to a presigned URL there,
// which downloads the layer's bytes; the local handler, and a HEAD, are
// still answered from the store, and a blob of another repository is
// not handed out.
func TestPublicOffloadRedirect(t *testing.T) {
	srv, off := offloadStore(t)
	up := httptest.NewServer(registry.New(registry.Logger(quiet)))
	t.Cleanup(up.Close)
	img := randomImageFor(t, "arm64", types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"foo.txt": "one", ".platforms/linux_arm64/.towerreg/entry*": "#!arm64\n"})
	cfg := config.Default()
	cfg.Offload = off
	cfg.Public.AnonymousRegistries = []string{host(up)}
	d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(),
		LayerDir: dir, LayerSource: dir, Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	ours := d.Generation().Set.Platforms["linux_arm64"].GzipDigest
	waitOffloaded(t, d, ours)
	local, public := serveDaemon(t, d)
	name := "/v2/" + pathHost(up) + "/test/img"
	// The manifest links the layer to the repository, for each audience.
	for _, h := range []string{local, public} {
		if _, err := remote.Get(mustRef(t, strings.TrimPrefix(h, "http://")+"/"+pathHost(up)+"/test/img:latest")); err != nil {
			t.Fatal(err)
		}
	}

	get := func(method, url string) *http.Response { return noFollowDo(t, method, url) }
	resp := get(http.MethodGet, public+name+"/blobs/"+ours.String())
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), srv.URL+"/layers/dev/blobs/sha256/"+ours.Hex) {
		t.Fatalf("public GET of the injected layer: %d Location %q, want 307 to the offload store", resp.StatusCode, resp.Header.Get("Location"))
	}
	got, err := http.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := v1.SHA256(got.Body)
	got.Body.Close()
	if err != nil || got.StatusCode != http.StatusOK || h != ours {
		t.Errorf("the presigned URL: %d, digest %s (%v), want %s", got.StatusCode, h, err, ours)
	}
	for _, tt := range []struct{ name, method, url string }{
		{"local GET", http.MethodGet, local + name + "/blobs/" + ours.String()},
		{"public HEAD", http.MethodHead, public + name + "/blobs/" + ours.String()},
	} {
		if resp := get(tt.method, tt.url); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d, want 200 from the store", tt.name, resp.StatusCode)
		}
	}
	// Another repository was never linked to the layer for this audience.
	if resp := get(http.MethodGet, public+"/v2/"+pathHost(up)+"/other/img/blobs/"+ours.String()); resp.StatusCode == http.StatusTemporaryRedirect {
		t.Errorf("a blob of another repository was redirected to the offload store")
	}
}
