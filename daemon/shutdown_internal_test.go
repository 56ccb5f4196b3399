package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// TestServeReturnsFlushError: the pull counts that cannot be saved on
// the way out make Serve fail, saying so, instead of a log line nobody
// checks after the daemon is gone.
func TestServeReturnsFlushError(t *testing.T) {
	state := t.TempDir()
	d, err := New(t.Context(), Options{
		Config: config.Default(), CacheDir: t.TempDir(), StateDir: state,
		Layer: fstest.MapFS{"f": {Data: []byte("x")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := v1.NewHash("sha256:" + strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	rec := token.Record{Image: token.Upstream{Registry: "127.0.0.1:5000", Repository: "app", Reference: "v1", Digest: digest},
		Generation: "g1"}
	tok, _, err := d.tokenStore.Issue(t.Context(), rec, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.tokenStore.CountPull(string(tok)); err != nil {
		t.Fatal(err)
	}
	// The count can no longer reach the disk.
	if err := os.RemoveAll(filepath.Join(state, "tokens")); err != nil {
		t.Fatal(err)
	}
	_, stop, served := serveLoopback(t, d)
	stop()
	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "save token pull counts") {
			t.Fatalf("Serve = %v, want the failed save", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
