package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast keeps the tests quick; the production defaults are longer.
var fast = Options{Quiet: 30 * time.Millisecond, MaxDelay: 300 * time.Millisecond, RootPoll: 20 * time.Millisecond}

// start runs a watcher on dir until the test ends, and waits for Run to
// return then, so goleak sees no goroutine of it.
func start(t *testing.T, dir string, o Options) *Watcher {
	t.Helper()
	w, err := New(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

func next(t *testing.T, w *Watcher, within time.Duration) Change {
	t.Helper()
	select {
	case c := <-w.C():
		return c
	case <-time.After(within):
		t.Fatalf("no change within %v", within)
		return Change{}
	}
}

func none(t *testing.T, w *Watcher, during time.Duration) {
	t.Helper()
	select {
	case c := <-w.C():
		t.Fatalf("unexpected change %+v", c)
	case <-time.After(during):
	}
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// atomicSave writes p the way most editors and build tools save: a
// temporary file in the same directory, renamed over the original.
func atomicSave(t *testing.T, p, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".swp")
	write(t, tmp, data)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the tree under dir; setup runs before the watcher.
		setup       func(t *testing.T, dir string)
		edit        func(t *testing.T, dir string)
		wantTrigger string
		minEvents   int
	}{
		{
			name:        "write",
			edit:        func(t *testing.T, dir string) { write(t, filepath.Join(dir, "foo.txt"), "new") },
			wantTrigger: "foo.txt", minEvents: 1,
		},
		{
			name:  "atomic rename-save names the file, not the temporary",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "foo.txt"), "old") },
			edit:  func(t *testing.T, dir string) { atomicSave(t, filepath.Join(dir, "foo.txt"), "new") },
			// create, write, close of the temporary, then the rename:
			// all one burst.
			wantTrigger: "foo.txt", minEvents: 3,
		},
		{
			name:  "vim-style save: rename to a backup, write, delete the backup",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "foo.txt"), "old") },
			edit: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "foo.txt")
				if err := os.Rename(p, p+"~"); err != nil {
					t.Fatal(err)
				}
				write(t, p, "new")
				if err := os.Remove(p + "~"); err != nil {
					t.Fatal(err)
				}
			},
			wantTrigger: "foo.txt", minEvents: 3,
		},
		{
			name:  "file in an existing subdirectory",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a/b/c.txt"), "old") },
			edit:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a/b/c.txt"), "new") },
			// The burst's trigger is where the content changed.
			wantTrigger: "a/b/c.txt", minEvents: 1,
		},
		{
			name: "a new tree, made faster than watches can be added",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "new/deep/er/file.bin"), "x")
			},
			// Events inside the new tree may come or not, depending on the
			// race with the watch; the Create of "new" always does.
			wantTrigger: "", minEvents: 1,
		},
		{
			name:        "removal",
			setup:       func(t *testing.T, dir string) { write(t, filepath.Join(dir, "gone.txt"), "x") },
			edit:        func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "gone.txt")) },
			wantTrigger: "gone.txt", minEvents: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			w := start(t, dir, fast)
			tt.edit(t, dir)
			c := next(t, w, 2*time.Second)
			if tt.wantTrigger != "" && c.Trigger != tt.wantTrigger {
				t.Errorf("trigger %q, want %q", c.Trigger, tt.wantTrigger)
			}
			if c.Trigger == "" || c.Events < tt.minEvents || c.Rescan {
				t.Errorf("change %+v: want a trigger, at least %d events, no rescan", c, tt.minEvents)
			}
			// One burst, one Change.
			none(t, w, 3*fast.Quiet)
		})
	}
}

// TestNewDirectoriesAreWatched: a directory created while the watcher runs
// is watched too, and so is one made inside it.
func TestNewDirectoriesAreWatched(t *testing.T) {
	dir := t.TempDir()
	w := start(t, dir, fast)
	if err := os.MkdirAll(filepath.Join(dir, "sub/deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	next(t, w, 2*time.Second)
	write(t, filepath.Join(dir, "sub/deeper/late.txt"), "x")
	if c := next(t, w, 2*time.Second); c.Trigger != "sub/deeper/late.txt" {
		t.Fatalf("trigger %q, want sub/deeper/late.txt", c.Trigger)
	}
	// A directory moved in from outside brings its subdirectories.
	outside := t.TempDir()
	write(t, filepath.Join(outside, "moved/inner/x.txt"), "x")
	if err := os.Rename(filepath.Join(outside, "moved"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	next(t, w, 2*time.Second)
	write(t, filepath.Join(dir, "moved/inner/y.txt"), "y")
	if c := next(t, w, 2*time.Second); c.Trigger != "moved/inner/y.txt" {
		t.Fatalf("trigger %q, want moved/inner/y.txt", c.Trigger)
	}
}

// TestDebounce: a burst gives one Change once quiet; a burst that never
// goes quiet still gives Changes, at most about one per MaxDelay.
func TestDebounce(t *testing.T) {
	tests := []struct {
		name      string
		o         Options
		writes    int
		every     time.Duration
		minDuring int  // Changes received while writing, at least
		one       bool // exactly one Change in all
	}{
		// The quiet window is wide so that a loaded machine (-race, CI)
		// does not pause long enough between two writes to end the burst.
		{"a burst is one change", Options{Quiet: 250 * time.Millisecond, MaxDelay: 10 * time.Second}, 50, time.Millisecond, 0, true},
		{"a steady stream is cut at MaxDelay", Options{Quiet: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond}, 40, 10 * time.Millisecond, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := start(t, dir, tt.o)
			during := 0
			begin := time.Now()
			for i := range tt.writes {
				write(t, filepath.Join(dir, "f.txt"), string(rune('a'+i%26)))
				select {
				case <-w.C():
					during++
				case <-time.After(tt.every):
				}
			}
			minTotal, maxTotal := 2, int(time.Since(begin)/tt.o.MaxDelay)+2
			if tt.one {
				minTotal, maxTotal = 1, 1
			}
			total := during
			for {
				select {
				case <-w.C():
					total++
					continue
				case <-time.After(4 * tt.o.Quiet):
				}
				break
			}
			if during < tt.minDuring || total < minTotal || total > maxTotal {
				t.Errorf("%d changes while writing, %d in all; want at least %d while writing and %d to %d in all",
					during, total, tt.minDuring, minTotal, maxTotal)
			}
		})
	}
}

// TestSlowConsumer: Changes not taken are merged, not queued, and the
// watcher keeps reading events meanwhile.
func TestSlowConsumer(t *testing.T) {
	dir := t.TempDir()
	w := start(t, dir, fast)
	write(t, filepath.Join(dir, "a.txt"), "a")
	time.Sleep(4 * fast.Quiet)
	write(t, filepath.Join(dir, "b.txt"), "b")
	time.Sleep(4 * fast.Quiet)
	c := next(t, w, time.Second)
	if c.Trigger != "b.txt" || c.Events < 2 {
		t.Fatalf("merged change %+v, want trigger b.txt and the events of both bursts", c)
	}
	none(t, w, 3*fast.Quiet)
}

// TestOverflow feeds the loop an overflow, which a test cannot make the
// kernel produce on demand: the watcher rescans, so a directory created
// while events were being lost is watched, and reports a Rescan.
func TestOverflow(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	events := make(chan fsnotify.Event)
	errs := make(chan error)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.loop(ctx, events, errs) }()
	defer func() {
		cancel()
		<-done
	}()

	missed := filepath.Join(dir, "missed")
	if err := os.MkdirAll(filepath.Join(missed, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	errs <- fsnotify.ErrEventOverflow
	c := next(t, w, time.Second)
	if !c.Rescan || c.Trigger != "" {
		t.Fatalf("change %+v, want a rescan with no trigger", c)
	}
	watched := w.fw.WatchList()
	for _, d := range []string{missed, filepath.Join(missed, "inner")} {
		if !slices.Contains(watched, d) {
			t.Errorf("%s is not watched after the rescan; watching %v", d, watched)
		}
	}

	// Any other error is logged, not a change.
	errs <- os.ErrPermission
	none(t, w, 3*fast.Quiet)
}

// TestRootRemovedAndBack: removing the root is a change (the daemon keeps
// the previous layer), and its return is a rescan, watched again.
func TestRootRemovedAndBack(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "layer")
	write(t, filepath.Join(dir, "foo.txt"), "x")
	w := start(t, dir, fast)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	next(t, w, 2*time.Second)
	write(t, filepath.Join(dir, "foo.txt"), "back")
	if c := next(t, w, 2*time.Second); !c.Rescan {
		t.Fatalf("change %+v when the root came back, want a rescan", c)
	}
	write(t, filepath.Join(dir, "later.txt"), "x")
	if c := next(t, w, 2*time.Second); c.Trigger != "later.txt" {
		t.Fatalf("trigger %q after the root came back, want later.txt", c.Trigger)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
		t.Fatal("New on a missing directory: no error")
	}
}

// TestLimitStops feeds the loop the errors that fsnotify reports when the
// system refuses a watch (kqueue's EMFILE on macOS, where every file costs
// a descriptor; inotify's ENOSPC): the watcher stops with ErrLimit, so the
// caller can poll, rather than miss edits. Other errors are logged only.
func TestLimitStops(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		stop bool
	}{
		{"EMFILE", fmt.Errorf("kqueue: open x: %w", syscall.EMFILE), true},
		{"ENFILE", &os.PathError{Op: "open", Path: "x", Err: syscall.ENFILE}, true},
		{"ENOSPC", fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC), true},
		{"permission", os.ErrPermission, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(t.TempDir(), fast)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			errs := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.loop(ctx, make(chan fsnotify.Event), errs) }()
			errs <- tt.err
			select {
			case err := <-done:
				if !tt.stop {
					t.Fatalf("stopped on %v", err)
				}
				if !errors.Is(err, ErrLimit) || !errors.Is(err, tt.err) {
					t.Errorf("stopped with %v, want ErrLimit wrapping %v", err, tt.err)
				}
			case <-time.After(200 * time.Millisecond):
				if tt.stop {
					t.Fatal("still running after a limit error")
				}
				cancel()
				<-done
			}
		})
	}
}

// TestIsLimit: the errnos of the system's limits, however wrapped, and
// nothing else.
func TestIsLimit(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{syscall.EMFILE, true},
		{fmt.Errorf("watch /x: %w", &os.PathError{Op: "open", Path: "/x/y", Err: syscall.EMFILE}), true},
		{syscall.ENOSPC, true},
		{ErrLimit, true},
		{fs.ErrNotExist, false},
		{errors.New("too many open files"), false}, // words are not an errno
	} {
		if got := IsLimit(tt.err); got != tt.want {
			t.Errorf("IsLimit(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestStarted: Started is called as a burst starts, before its Change, and
// the Changes' Bursts add up to the calls, merged Changes included.
func TestStarted(t *testing.T) {
	dir := t.TempDir()
	var started atomic.Int32
	o := fast
	o.Started = func() { started.Add(1) }
	w := start(t, dir, o)
	write(t, filepath.Join(dir, "a.txt"), "a")
	deadline := time.Now().Add(5 * time.Second)
	for started.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no Started within 5s of a write")
		}
		time.Sleep(time.Millisecond)
	}
	// Two more bursts before the consumer takes anything: one Change.
	time.Sleep(4 * fast.Quiet)
	write(t, filepath.Join(dir, "b.txt"), "b")
	time.Sleep(4 * fast.Quiet)
	write(t, filepath.Join(dir, "c.txt"), "c")
	time.Sleep(4 * fast.Quiet)
	c := next(t, w, time.Second)
	if n := started.Load(); c.Bursts != int(n) || n != 3 {
		t.Fatalf("Change %+v after %d Started calls, want 3 bursts in it", c, n)
	}
	none(t, w, 3*fast.Quiet)
}
