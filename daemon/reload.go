package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
	"github.com/tower-reg/tower-reg/layer/watch"
)

// errUnsettled is a layer directory that changed while it was being packed:
// a file half-written by an editor or a build. The layer packed from it may
// mix old and new bytes, so it is not served; the write that changed it has
// an event of its own, which packs again once the directory is still.
var errUnsettled = errors.New("the layer directory changed while it was packed (a file still being written?)")

// reloader is the proxy.Layers of the daemon: the current generation, which
// a change of the layer directory replaces. Every pull reads Current once,
// so a pull in flight during a reload completes with the generation it
// started with, and its digests stay consistent.
type reloader struct {
	cur    atomic.Pointer[proxy.Generation]
	st     *store.Store
	src    fs.FS
	source string
	bus    *event.Bus
	log    *slog.Logger
	// afterSwap runs after a new generation starts (the cache GC).
	afterSwap func(ctx context.Context, g proxy.Generation)

	// edits are the watcher's bursts not reloaded yet, which a pull by
	// tag waits for (Settled).
	edits pendingEdits

	mu sync.Mutex // one reload at a time; guards fp
	// fp is the fingerprint of the tree the current generation was
	// packed from.
	fp [sha256.Size]byte

	// newWatcher opens the watcher of the layer directory; nil is
	// watch.New. pollEvery is the polling interval when it cannot watch;
	// zero is DefaultPollInterval.
	newWatcher func(dir string, o watch.Options) (changeSource, error)
	pollEvery  time.Duration
}

var _ proxy.Layers = (*reloader)(nil)

// Current implements proxy.Layers.
func (r *reloader) Current() proxy.Generation { return *r.cur.Load() }

// Settled implements proxy.Layers: the generation once the edits the
// watcher has seen are reloaded, waiting at most settleMax.
func (r *reloader) Settled(ctx context.Context) proxy.Generation {
	if !r.edits.wait(ctx, settleMax) && ctx.Err() == nil {
		r.log.Debug("serving the current layer: the layer directory is still changing", "waited", settleMax)
	}
	return r.Current()
}

// start sets the first generation.
func (r *reloader) start(g proxy.Generation, fp [sha256.Size]byte) {
	r.cur.Store(&g)
	r.fp = fp
}

// reload packs the layer directory again and starts a new generation if
// the layers changed. On any error the previous generation keeps serving;
// the error goes to the log and the event stream, and is returned.
func (r *reloader) reload(ctx context.Context, trigger string) (proxy.Generation, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.Current()
	ev := event.LayerReloaded{Source: r.source, Trigger: trigger, Generation: old.Number,
		OldDigest: old.Set.Common.GzipDigest.String()}
	publish := func() {
		ev.Time = r.bus.Now()
		r.bus.Publish(ev)
	}

	before, err := fingerprint(ctx, r.src)
	if err == nil && before == r.fp {
		// Only metadata that the layer does not carry changed (an atime,
		// a file saved with the same bytes and mtime): nothing to pack.
		r.log.Debug("layer directory unchanged", "trigger", trigger)
		return old, false, nil
	}
	start := time.Now()
	set, err := layer.PackSet(ctx, r.src, r.st)
	ev.Duration = time.Since(start)
	if err == nil {
		// A tree that moved under the packer gave a layer that may be
		// torn; the fingerprint cannot fail where PackSet just worked,
		// but a failure would be reported all the same.
		var after [sha256.Size]byte
		if after, err = fingerprint(ctx, r.src); err == nil && after != before {
			err = errUnsettled
		}
	}
	var gen proxy.Generation
	if err == nil {
		gen, err = proxy.NewGeneration(old.Number+1, set)
	}
	if err != nil {
		if ctx.Err() != nil {
			return old, false, ctx.Err()
		}
		err = fmt.Errorf("reload layer %s: %w", r.source, err)
		ev.Err = err.Error()
		publish()
		return old, false, err
	}

	ev.NewDigest = set.Common.GzipDigest.String()
	ev.Files, ev.Bytes = set.Common.Files, set.Common.GzipSize
	if len(set.Platforms) > 0 {
		ev.Platforms = make(map[string]string, len(set.Platforms))
		for k, b := range set.Platforms {
			ev.Platforms[k] = b.GzipDigest.String()
			ev.Bytes += b.GzipSize
		}
	}
	r.fp = before
	if gen.ID == old.ID {
		// Same bytes packed (a touch, or an edit undone): the digests
		// clients hold stay current.
		publish()
		return old, false, nil
	}
	r.cur.Store(&gen)
	ev.Generation, ev.Changed = gen.Number, true
	publish()
	if r.afterSwap != nil {
		r.afterSwap(ctx, gen)
	}
	return gen, true, nil
}

// TriggerManual is the trigger of a reload asked for by Repack.
const TriggerManual = "(manual re-pack)"

// repack reloads even if the fingerprint says the tree is unchanged: the
// user asked for it, perhaps because the fingerprint missed an edit.
func (r *reloader) repack(ctx context.Context) error {
	r.mu.Lock()
	r.fp = [sha256.Size]byte{}
	r.mu.Unlock()
	_, _, err := r.reload(ctx, TriggerManual)
	return err
}

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

// watch reloads on every change of dir until ctx ends. A watcher that
// cannot start, or stops (kqueue on macOS holds a descriptor per file, so
// a large tree runs out of them; inotify has its own limits), gives way to
// polling: the tree's fingerprint, every pollEvery, with one warning.
// Hot reload keeps working, only slower to notice.
func (r *reloader) watch(ctx context.Context, dir string) error {
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
			r.edits.reloaded(c.Bursts)
		}
	}
}

// pollInstead says, once, why the layer directory is polled.
func (r *reloader) pollInstead(dir string, err error) {
	every := r.interval()
	if watch.IsLimit(err) {
		r.log.Warn("cannot watch the layer directory: too many files for the system's limits (open files, or inotify watches); polling it instead, hot reload still works",
			"dir", dir, "every", every, "error", err,
			"fix", "raise the limit (ulimit -n; on Linux fs.inotify.max_user_watches) and restart, or keep fewer files in the layer directory")
		return
	}
	r.log.Warn("cannot watch the layer directory; polling it instead, hot reload still works", "dir", dir, "every", every, "error", err)
}

func (r *reloader) interval() time.Duration {
	if r.pollEvery > 0 {
		return r.pollEvery
	}
	return DefaultPollInterval
}

// poll reloads when the tree's fingerprint changes, until ctx ends. A
// fingerprint whose reload failed is not tried again: the next change of
// the tree is (a file still being written changes it once more).
func (r *reloader) poll(ctx context.Context) error {
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

// fingerprint hashes what a layer is made of, short of the contents: each
// entry's path, type, permissions, size, mtime and (on Linux) ctime and
// inode, and each symlink's target. An unchanged fingerprint means an unchanged layer, so the tree is
// not packed again; a changed one packs and compares the digests.
func fingerprint(ctx context.Context, src fs.FS) ([sha256.Size]byte, error) {
	h := sha256.New()
	var buf [8]byte
	num := func(v int64) {
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	err := fs.WalkDir(src, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		num(int64(info.Mode()))
		num(info.Size())
		num(info.ModTime().UnixNano())
		// A tool that restores mtimes (cp -p, rsync -t, tar) can change
		// bytes under the same size and mtime; the inode change time and
		// the inode number it cannot restore, where the OS has them.
		for _, v := range inodeStamp(info) {
			num(v)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := fs.ReadLink(src, name)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
			h.Write([]byte{0})
		}
		return nil
	})
	var sum [sha256.Size]byte
	if err != nil {
		return sum, fmt.Errorf("scan layer directory: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
