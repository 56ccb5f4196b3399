package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
	"github.com/tower-reg/tower-reg/layer/watch"
)

// warnings records the log's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// stoppingWatcher is a watcher that runs a moment, then stops with err,
// as kqueue does when a new directory is one descriptor too many.
type stoppingWatcher struct {
	err error
	c   chan watch.Change
}

func (s stoppingWatcher) C() <-chan watch.Change { return s.c }
func (s stoppingWatcher) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(50 * time.Millisecond):
		return s.err
	}
}

// TestReloadPollFallback forces the watcher to fail the ways macOS makes
// it fail on a large layer directory (kqueue: EMFILE, one descriptor per
// file), or Linux (inotify's ENOSPC), at start or later: the reloader
// polls the tree's fingerprint instead, warns once, and an edit still
// starts a new generation.
func TestReloadPollFallback(t *testing.T) {
	emfile := fmt.Errorf("watch /layer: %w", &os.PathError{Op: "open", Path: "/layer/f1234", Err: syscall.EMFILE})
	for _, tt := range []struct {
		name    string
		open    func(string, watch.Options) (changeSource, error)
		limit   bool // the warning names the system's limits
		already bool // the watcher ran before it failed
	}{
		{name: "EMFILE at start", limit: true,
			open: func(string, watch.Options) (changeSource, error) { return nil, emfile }},
		{name: "ENOSPC at start", limit: true,
			open: func(string, watch.Options) (changeSource, error) {
				return nil, fmt.Errorf("watch /layer: %w", syscall.ENOSPC)
			}},
		{name: "EMFILE later", limit: true, already: true,
			open: func(string, watch.Options) (changeSource, error) {
				return stoppingWatcher{err: fmt.Errorf("%w: %w", watch.ErrLimit, syscall.EMFILE), c: make(chan watch.Change)}, nil
			}},
		{name: "other error at start",
			open: func(string, watch.Options) (changeSource, error) { return nil, errors.New("fsnotify: unsupported") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "fusion"), []byte("build 1"), 0o755); err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			src := os.DirFS(dir)
			fp, err := fingerprint(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			set, err := layer.PackSet(t.Context(), src, st)
			if err != nil {
				t.Fatal(err)
			}
			gen, err := proxy.NewGeneration(1, set)
			if err != nil {
				t.Fatal(err)
			}
			warns := &warnings{}
			r := &Reloader{st: st, src: src, source: dir, bus: event.NewBus(nil), log: slog.New(warns),
				dir: dir, newWatcher: tt.open, pollEvery: 20 * time.Millisecond}
			r.start(gen, fp)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Watch(ctx) }()
			defer func() { cancel(); <-done }()

			if tt.already {
				time.Sleep(100 * time.Millisecond) // past the watcher's failure
			}
			// The developer's build writes a new binary.
			if err := os.WriteFile(filepath.Join(dir, "fusion"), []byte("build 2, longer"), 0o755); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for r.Current().Number < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no new generation after the edit; warnings: %q", warns.list())
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Quiet polls after: still one warning, no new generation.
			time.Sleep(100 * time.Millisecond)
			if n := r.Current().Number; n != 2 {
				t.Errorf("generation %d after one edit, want 2", n)
			}
			w := warns.list()
			if len(w) != 1 || !strings.Contains(w[0], "polling") {
				t.Fatalf("warnings %q, want one that says it polls", w)
			}
			if got := strings.Contains(w[0], "too many files"); got != tt.limit {
				t.Errorf("warning %q: names the limits %v, want %v", w[0], got, tt.limit)
			}
		})
	}
}
