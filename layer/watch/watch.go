// Package watch reports changes under a directory tree, recursively, for the
// daemon's hot reload of the layer directory.
//
// fsnotify watches one directory at a time, so the watcher adds every
// directory of the tree at start and each directory created later. Events
// are debounced into one Change per burst: an editor's save (write a
// temporary file, rename it over the original) or a build that writes many
// files gives one Change once the tree has been quiet for a moment, and a
// tree that never goes quiet still gives one every MaxDelay. When the kernel
// queue overflows, events were lost, so the watcher walks the tree again to
// watch what it missed and reports a Change marked Rescan.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrLimit is a watcher stopped by the system's limits: too many open
// files (kqueue, on macOS and the BSDs, holds one descriptor per watched
// file and directory) or too many inotify watches. The caller polls
// instead.
var ErrLimit = errors.New("watch: the system's limit on open files or watches is reached")

// IsLimit tells whether err is the system refusing another watch or
// descriptor: EMFILE, ENFILE, or ENOSPC (inotify's max_user_watches).
func IsLimit(err error) bool {
	return errors.Is(err, ErrLimit) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOSPC)
}

// limitError wraps a limit error in ErrLimit, keeping its own words.
func limitError(err error) error {
	if errors.Is(err, ErrLimit) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrLimit, err)
}

// Change is one debounced burst of events.
type Change struct {
	// Trigger is the file, relative to the root, whose event best explains
	// the change: the last one named by an event that still exists, so an
	// editor's save names the file saved and not its temporary file. It is
	// empty for a rescan with no event.
	Trigger string
	// Events counts the fsnotify events folded into this Change.
	Events int
	// Rescan reports that events were lost (queue overflow) or the root
	// came back after being removed: anything may have changed.
	Rescan bool
	// First is when the first event of the burst arrived.
	First time.Time
	// Bursts counts the bursts folded into this Change: one, or more when
	// the consumer took the Change late. Each started with a call of
	// Options.Started.
	Bursts int
}

// Options tune a Watcher. Zero values take the defaults.
type Options struct {
	// Quiet is how long the tree must be still before a Change is sent.
	Quiet time.Duration
	// MaxDelay bounds how long a burst that never goes quiet is held.
	MaxDelay time.Duration
	// RootPoll is how often a removed root is looked for again.
	RootPoll time.Duration
	// Started, when set, is called as a burst starts: an edit has been
	// seen and its Change will follow, once the tree is still. The
	// consumer can count what it has yet to reload, before the quiet
	// window ends (Change.Bursts counts them back). It is called from
	// Run's goroutine, before that Change is sent, and must not block.
	Started func()
	Log     *slog.Logger
}

// Defaults. The quiet window is long enough for an editor's save (a few
// syscalls, well under a millisecond apart, though a slow disk may space
// them out), and short enough that the next pull sees the edit.
const (
	DefaultQuiet    = 50 * time.Millisecond
	DefaultMaxDelay = time.Second
	DefaultRootPoll = 500 * time.Millisecond
)

// Watcher watches one directory tree. Create it with New, then Run it.
type Watcher struct {
	root string
	o    Options
	fw   *fsnotify.Watcher
	out  chan Change
	// rootGone is set while the root does not exist; the watcher then polls
	// for it, as inotify cannot watch a path that is not there.
	rootGone bool
}

// New starts watching every directory under root. Changes arrive on C once
// Run runs; Run closes the fsnotify watcher when it returns, so call Close
// only if Run is never called.
func New(root string, o Options) (*Watcher, error) {
	if o.Quiet <= 0 {
		o.Quiet = DefaultQuiet
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxDelay < o.Quiet {
		o.MaxDelay = o.Quiet
	}
	if o.RootPoll <= 0 {
		o.RootPoll = DefaultRootPoll
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	w := &Watcher{root: abs, o: o, fw: fw, out: make(chan Change)}
	if err := w.addTree(abs); err != nil {
		fw.Close()
		if IsLimit(err) {
			err = limitError(err)
		}
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	return w, nil
}

// C delivers the Changes. A Change not yet received is merged with the next
// burst rather than queued, so a slow consumer gets fewer, larger Changes
// and the watcher never blocks on it.
func (w *Watcher) C() <-chan Change { return w.out }

// Close releases the fsnotify watcher of a Watcher that was never Run.
func (w *Watcher) Close() error { return w.fw.Close() }

// addTree watches dir and every directory below it. Symlinks are not
// followed: the layer packs them as links, so their targets are not part of
// it. A directory that vanishes during the walk is skipped; its removal
// has an event of its own.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if err := w.fw.Add(p); err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		return nil
	})
}

// Run delivers Changes until ctx ends. It returns nil then, or the error
// that stopped the watcher.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fw.Close()
	return w.loop(ctx, w.fw.Events, w.fw.Errors)
}

// burst is the Change being gathered.
type burst struct {
	Change
	recent []string // the latest distinct paths, oldest first
}

// maxRecent bounds the paths a burst remembers to choose its trigger from.
const maxRecent = 32

// loop is Run over the given channels, which the tests feed directly to
// simulate what the kernel cannot be made to do on demand (an overflow).
func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) error {
	var (
		cur      *burst // gathering: events arrive, the quiet timer runs
		ready    *Change
		quiet    = stoppedTimer()
		deadline = stoppedTimer()
		poll     <-chan time.Time
		pollT    *time.Ticker
	)
	defer func() {
		quiet.Stop()
		deadline.Stop()
		if pollT != nil {
			pollT.Stop()
		}
	}()
	flush := func() {
		quiet.Stop()
		deadline.Stop()
		c := cur.Change
		c.Trigger = w.trigger(cur)
		cur = nil
		if ready == nil {
			ready = &c
			return
		}
		// The consumer has not taken the previous Change: merge, keeping
		// the newer trigger.
		ready.Events += c.Events
		ready.Bursts += c.Bursts
		ready.Rescan = ready.Rescan || c.Rescan
		if c.Trigger != "" {
			ready.Trigger = c.Trigger
		}
	}
	note := func(path string, rescan bool) {
		now := time.Now()
		if cur == nil {
			cur = &burst{Change: Change{First: now, Bursts: 1}}
			deadline.Reset(w.o.MaxDelay)
			if w.o.Started != nil {
				w.o.Started()
			}
		}
		if path != "" {
			cur.Events++
			cur.recent = slices.DeleteFunc(cur.recent, func(p string) bool { return p == path })
			if len(cur.recent) == maxRecent {
				cur.recent = cur.recent[1:]
			}
			cur.recent = append(cur.recent, path)
		}
		cur.Rescan = cur.Rescan || rescan
		quiet.Reset(w.o.Quiet)
	}
	for {
		var out chan Change
		var next Change
		if ready != nil {
			out, next = w.out, *ready
		}
		select {
		case <-ctx.Done():
			return nil
		case out <- next:
			ready = nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("watch: fsnotify closed its event channel")
			}
			gone, err := w.handle(ev)
			if err != nil {
				return err
			}
			if gone && pollT == nil {
				pollT = time.NewTicker(w.o.RootPoll)
				poll = pollT.C
			}
			note(ev.Name, false)
		case err, ok := <-errs:
			if !ok {
				return errors.New("watch: fsnotify closed its error channel")
			}
			if IsLimit(err) {
				// kqueue watches the files of a directory as they appear;
				// one it could not watch is an edit that would be missed.
				return limitError(err)
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				// A single failed watch (a directory removed as it was
				// added) is not worth stopping hot reload for.
				w.o.Log.Warn("layer watcher", "root", w.root, "error", err)
				continue
			}
			w.o.Log.Warn("layer watcher: events were lost, rescanning the layer directory", "root", w.root)
			if err := w.addTree(w.root); err != nil && !errors.Is(err, fs.ErrNotExist) {
				w.o.Log.Warn("layer watcher: rescan", "root", w.root, "error", err)
			}
			note("", true)
		case <-poll:
			if _, err := os.Stat(w.root); err != nil {
				continue
			}
			if err := w.addTree(w.root); err != nil {
				w.o.Log.Warn("layer watcher: the layer directory is back but cannot be watched", "root", w.root, "error", err)
				continue
			}
			w.o.Log.Info("layer watcher: the layer directory is back", "root", w.root)
			w.rootGone = false
			pollT.Stop()
			pollT, poll = nil, nil
			note("", true)
		case <-quiet.C:
			if cur != nil {
				flush()
			}
		case <-deadline.C:
			if cur != nil {
				flush()
			}
		}
	}
}

// handle keeps the watch list in step with the tree, and reports whether
// the root itself went away (the caller then polls for it). A new
// directory that the system's limits keep from being watched stops the
// watcher with ErrLimit: its edits would go unseen.
func (w *Watcher) handle(ev fsnotify.Event) (bool, error) {
	if ev.Has(fsnotify.Create) {
		// A directory created (or moved in) is watched with everything
		// already in it: files written before the watch was added have
		// no event, but this Create starts a burst that repacks them.
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if err := w.addTree(ev.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				if IsLimit(err) {
					return false, limitError(err)
				}
				w.o.Log.Warn("layer watcher: cannot watch a new directory", "dir", ev.Name, "error", err)
			}
		}
	}
	if ev.Name == w.root && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) && !w.rootGone {
		if _, err := os.Stat(w.root); err != nil {
			w.rootGone = true
			return true, nil
		}
	}
	return false, nil
}

// trigger names the file of a burst relative to the root: the most recent
// path that exists now, which skips an editor's temporary and backup files,
// else the most recent path (a deletion).
func (w *Watcher) trigger(b *burst) string {
	if len(b.recent) == 0 {
		return ""
	}
	pick := b.recent[len(b.recent)-1]
	for _, p := range slices.Backward(b.recent) {
		if _, err := os.Lstat(p); err == nil {
			pick = p
			break
		}
	}
	rel, err := filepath.Rel(w.root, pick)
	if err != nil {
		return pick
	}
	return filepath.ToSlash(rel)
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
