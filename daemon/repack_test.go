package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// TestRepackRoute drives POST /_towerreg/reload, the dashboard's `r` over
// HTTP: an edit the daemon has not seen (no watcher runs here) starts a new
// generation, and a second re-pack of the same tree still packs (it is
// forced) and reports the layers unchanged.
func TestRepackRoute(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"foo.txt": "one"})
	bus := event.NewBus(nil)
	sub := bus.Subscribe(64)
	defer sub.Close()
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: config.Default(), CacheDir: t.TempDir(),
		LayerDir: dir, LayerSource: dir, Bus: bus,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "foo.txt"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		changed bool
		gen     int
	}{
		{"after an edit", true, 2},
		{"nothing changed", false, 2},
	} {
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, api.ReloadPath, nil))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%s: POST %s: %d %s", tt.name, api.ReloadPath, rec.Code, rec.Body)
		}
		ev := nextReload(t, sub)
		if ev.Trigger != daemon.TriggerManual || ev.Changed != tt.changed || ev.Generation != tt.gen || ev.Err != "" {
			t.Errorf("%s: %+v, want trigger %q, changed %v, generation %d", tt.name, ev, daemon.TriggerManual, tt.changed, tt.gen)
		}
		if got := d.Status().Layer.Generation; got != tt.gen {
			t.Errorf("%s: status generation %d, want %d", tt.name, got, tt.gen)
		}
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.ReloadPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", api.ReloadPath, rec.Code)
	}
}

func nextReload(t *testing.T, sub *event.Subscription) event.LayerReloaded {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-sub.C():
			if r, ok := e.(event.LayerReloaded); ok {
				return r
			}
		case <-timeout:
			t.Fatal("no LayerReloaded event")
		}
	}
}
