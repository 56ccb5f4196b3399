package reload

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
)

// writingFS is a directory in which a.txt is appended to whenever the
// packer opens b.txt: a file still being written while the layer is packed.
type writingFS struct {
	fs.FS
	dir string
	t   *testing.T
}

func (w writingFS) Open(name string) (fs.File, error) {
	if name == "b.txt" {
		f, err := os.OpenFile(filepath.Join(w.dir, "a.txt"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			w.t.Error(err)
		} else {
			f.WriteString("more")
			f.Close()
		}
	}
	return w.FS.Open(name)
}

// TestReloadHalfWritten: a tree that changes while it is packed is not
// served; the previous generation stays, with an error event.
func TestReloadHalfWritten(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set, err := layer.PackSet(t.Context(), os.DirFS(dir), st)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := proxy.NewGeneration(1, set)
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus(nil)
	sub := bus.Subscribe(8)
	defer sub.Close()
	r := &Reloader{st: st, src: writingFS{os.DirFS(dir), dir, t}, source: dir, bus: bus, log: slog.New(slog.DiscardHandler)}
	r.start(gen, [32]byte{})

	got, changed, err := r.reload(t.Context(), "a.txt")
	if !errors.Is(err, errUnsettled) || changed || got.ID != gen.ID || r.Current().ID != gen.ID {
		t.Fatalf("reload of a tree written during the pack: changed %v, err %v; want errUnsettled and generation 1 kept", changed, err)
	}
	ev := (<-sub.C()).(event.LayerReloaded)
	if ev.Err == "" || ev.Changed || ev.Trigger != "a.txt" {
		t.Fatalf("event %+v, want an error for trigger a.txt", ev)
	}

	// Once the writer stops, the same reload succeeds.
	r.src = os.DirFS(dir)
	got, changed, err = r.reload(t.Context(), "a.txt")
	if err != nil || !changed || got.Number != 2 || r.Current().ID != got.ID {
		t.Fatalf("reload of the settled tree: gen %d changed %v err %v; want generation 2", got.Number, changed, err)
	}
}

// TestFingerprint: what changes a layer changes the fingerprint, even
// bytes written under a restored size and mtime; reading does not.
func TestFingerprint(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		same   bool
	}{
		{"nothing", func(*testing.T, string) {}, true},
		{"a read", func(t *testing.T, dir string) {
			if _, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"same size, mtime restored", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "a.txt")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("A.txt"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"mode", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "a.txt"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"new empty directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a.txt"), 0o644); err != nil {
				t.Fatal(err)
			}
			before, err := fingerprint(t.Context(), os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir)
			after, err := fingerprint(t.Context(), os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			if (before == after) != tt.same {
				t.Fatalf("fingerprint unchanged = %v, want %v", before == after, tt.same)
			}
		})
	}
}
