package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/reload"
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
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9090"+admin.ReloadPath, nil)
		req.Header.Set("Content-Type", "application/json")
		d.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%s: POST %s: %d %s", tt.name, admin.ReloadPath, rec.Code, rec.Body)
		}
		ev := nextReload(t, sub)
		if ev.Trigger != reload.TriggerManual || ev.Changed != tt.changed || ev.Generation != tt.gen || ev.Err != "" {
			t.Errorf("%s: %+v, want trigger %q, changed %v, generation %d", tt.name, ev, reload.TriggerManual, tt.changed, tt.gen)
		}
		if got := d.Status().Layer.Generation; got != tt.gen {
			t.Errorf("%s: status generation %d, want %d", tt.name, got, tt.gen)
		}
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9090"+admin.ReloadPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", admin.ReloadPath, rec.Code)
	}
}

// TestReloadRefusesWebPages: POST /_towerreg/reload is refused, before
// any re-pack, to what a web page can send: a form post (text/plain, with
// an Origin), or any request with an Origin. Only a tool's request (JSON,
// no Origin) re-packs.
func TestReloadRefusesWebPages(t *testing.T) {
	bus := event.NewBus(nil)
	sub := bus.Subscribe(64)
	defer sub.Close()
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: config.Default(), CacheDir: t.TempDir(), Layer: testLayer(), LayerSource: "test", Bus: bus,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, contentType, origin string
		want                      int
	}{
		{"cross-site form post", "text/plain", "http://evil.example", http.StatusForbidden},
		{"form post without an Origin", "application/x-www-form-urlencoded", "", http.StatusUnsupportedMediaType},
		{"no content type", "", "", http.StatusUnsupportedMediaType},
		{"JSON from a page", "application/json", "http://evil.example", http.StatusForbidden},
		{"a tool", "application/json", "", http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for len(sub.C()) > 0 {
				<-sub.C()
			}
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9090"+admin.ReloadPath, strings.NewReader("x=1"))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			rec := httptest.NewRecorder()
			d.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("POST %s: %d %s, want %d", admin.ReloadPath, rec.Code, rec.Body, tt.want)
			}
			if tt.want != http.StatusNoContent {
				select {
				case e := <-sub.C():
					if _, ok := e.(event.LayerReloaded); ok {
						t.Errorf("a refused request re-packed: %+v", e)
					}
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
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
