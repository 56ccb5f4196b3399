package reload

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/tower-reg/tower-reg/layer/watch"
)

// changeSource is what the reloader needs of a watcher: watch.Watcher,
// or a test's stand-in that fails as kqueue does on macOS.
type changeSource interface {
	C() <-chan watch.Change
	Run(ctx context.Context) error
}

// newWatcher is watch.New behind the changeSource interface.
func newWatcher(dir string, o watch.Options) (changeSource, error) { return watch.New(dir, o) }

// DefaultPollInterval is how often a layer directory that cannot be
// watched is fingerprinted for changes.
const DefaultPollInterval = time.Second

// TriggerPoll is the trigger of a reload that polling found.
const TriggerPoll = "(poll)"

// Watch reloads on every change of the layer directory until ctx ends;
// without one (Options.Dir) it returns at once. A watcher that
// cannot start, or stops (kqueue on macOS holds a descriptor per file, so
// a large tree runs out of them; inotify has its own limits), gives way to
// polling: the tree's fingerprint, every pollEvery, with one warning.
// Hot reload keeps working, only slower to notice.
func (r *Reloader) Watch(ctx context.Context) error {
	dir := r.dir
	if dir == "" {
		return nil
	}
	open := r.newWatcher
	if open == nil {
		open = newWatcher
	}
	w, err := open(dir, watch.Options{Log: r.log, Started: r.edits.add})
	if err != nil {
		r.pollInstead(dir, err)
		return r.poll(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Bursts still counted when the watcher stops will have no Change.
	defer r.edits.forget()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// Edits made between the first pack and the watch have no event.
	r.reload(ctx, "")
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case err := <-done:
			if err == nil {
				return nil
			}
			r.edits.forget()
			r.pollInstead(dir, err)
			return r.poll(ctx)
		case c := <-w.C():
			r.reload(ctx, c.Trigger)
			r.edits.done(c.Bursts)
		}
	}
}

// pollInstead says, once, why the layer directory is polled.
func (r *Reloader) pollInstead(dir string, err error) {
	every := r.interval()
	if watch.IsLimit(err) {
		r.log.Warn("cannot watch the layer directory: too many files for the system's limits (open files, or inotify watches); polling it instead, hot reload still works",
			"dir", dir, "every", every, "error", err,
			"fix", "raise the limit (ulimit -n; on Linux fs.inotify.max_user_watches) and restart, or keep fewer files in the layer directory")
		return
	}
	r.log.Warn("cannot watch the layer directory; polling it instead, hot reload still works", "dir", dir, "every", every, "error", err)
}

func (r *Reloader) interval() time.Duration {
	if r.pollEvery > 0 {
		return r.pollEvery
	}
	return DefaultPollInterval
}

// poll reloads when the tree's fingerprint changes, until ctx ends. A
// fingerprint whose reload failed is not tried again: the next change of
// the tree is (a file still being written changes it once more).
func (r *Reloader) poll(ctx context.Context) error {
	t := time.NewTicker(r.interval())
	defer t.Stop()
	var tried [sha256.Size]byte
	// Edits made since the first pack.
	r.reload(ctx, TriggerPoll)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		fp, err := fingerprint(ctx, r.src)
		if err != nil {
			continue // the root removed: its return is a change
		}
		r.mu.Lock()
		cur := r.fp
		r.mu.Unlock()
		if fp == cur || fp == tried {
			continue
		}
		tried = fp
		r.reload(ctx, TriggerPoll)
	}
}
