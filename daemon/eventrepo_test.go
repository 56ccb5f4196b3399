package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// TestEventsNameOneRepo: manifest and blob lines name the repository in one
// form, the upstream repository, failed answers included: a failed
// manifest line used the client's path, a blob line the upstream's.
func TestEventsNameOneRepo(t *testing.T) {
	up := httptest.NewServer(registry.New(registry.Logger(quiet)))
	t.Cleanup(up.Close)
	bus := event.NewBus(nil)
	sub := bus.Subscribe(64)
	t.Cleanup(sub.Close)
	d, err := daemon.New(t.Context(), daemon.Options{Config: config.Default(), CacheDir: t.TempDir(),
		StateDir: t.TempDir(), Layer: testLayer(), Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(d.WaitIdle)
	base := srv.URL + "/v2/" + under(host(up)) + "/test/missing/"
	for _, p := range []string{"manifests/latest", "blobs/sha256:" + zeros} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	want := host(up) + "/test/missing"
	for _, kind := range []string{"manifest", "blob"} {
		if got := nextRepo(t, sub); got != want {
			t.Errorf("%s event names %q, want %q", kind, got, want)
		}
	}
}

// nextRepo is the repository of the next manifest or blob event.
func nextRepo(t *testing.T, sub *event.Subscription) string {
	t.Helper()
	for {
		select {
		case e := <-sub.C():
			switch e := e.(type) {
			case event.ManifestServed:
				return e.Repo
			case event.BlobServed:
				return e.Repo
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no manifest or blob event")
		}
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
