package daemon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/s3test"
)

// TestOffloadGenerations: the first generation's layers, every
// platform's, are uploaded when the daemon packs them, and a re-pack's
// new generation is uploaded too, though the request that asked for it
// ended at once; Location then redirects to bytes with the right digest.
func TestOffloadGenerations(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "layers")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"foo.txt": "one", ".platforms/linux_arm64/.towerreg/entry*": "#!arm64\n"})
	cfg := config.Default()
	cfg.Offload = config.Offload{URL: "s3://" + bucket + "/dev", Endpoint: srv.URL}
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
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9090"+api.ReloadPath, nil)
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithCancel(t.Context())
	d.Handler().ServeHTTP(rec, req.WithContext(ctx))
	cancel() // the request is over; the uploads it started are not
	if rec.Code != http.StatusNoContent || d.Generation().Number != 2 {
		t.Fatalf("re-pack: %d %s, generation %d", rec.Code, rec.Body, d.Generation().Number)
	}
	gen2 := d.Generation().Set
	waitOffloaded(t, d, gen2.Common.GzipDigest, gen2.Platforms["linux_arm64"].GzipDigest)
	if _, err := os.Stat(filepath.Join(srv.Dir, bucket, "dev", "blobs", "sha256", gen2.Common.GzipDigest.Hex)); err != nil {
		t.Errorf("the new common layer is not content-addressed under the prefix: %v", err)
	}
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
