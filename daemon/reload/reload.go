// Package reload keeps the daemon's layer generations: it packs the layer
// directory, watches it (or polls it where it cannot be watched), and
// starts a new generation when its layers change. Pulls read the current
// generation through proxy.Layers.
package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
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

// Reloader is the proxy.Layers of the daemon: the current generation, which
// a change of the layer directory replaces. Every pull reads Current once,
// so a pull in flight during a reload completes with the generation it
// started with, and its digests stay consistent.
type Reloader struct {
	cur    atomic.Pointer[proxy.Generation]
	st     *store.Store
	src    fs.FS
	source string
	dir    string // "": not watched
	bus    *event.Bus
	log    *slog.Logger
	// afterSwap runs after a new generation starts (the cache GC, the
	// offload's uploads).
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

var _ proxy.Layers = (*Reloader)(nil)

// Current implements proxy.Layers.
func (r *Reloader) Current() proxy.Generation { return *r.cur.Load() }

// Settled implements proxy.Layers: the generation once the edits the
// watcher has seen are reloaded, waiting at most settleMax.
func (r *Reloader) Settled(ctx context.Context) proxy.Generation {
	if !r.edits.wait(ctx, settleMax) && ctx.Err() == nil {
		r.log.Debug("serving the current layer: the layer directory is still changing", "waited", settleMax)
	}
	return r.Current()
}

// start sets the first generation.
func (r *Reloader) start(g proxy.Generation, fp [sha256.Size]byte) {
	r.cur.Store(&g)
	r.fp = fp
}

// Options are what a Reloader is built from.
type Options struct {
	Store *store.Store
	// Layer is the layer directory's contents; Source names it in logs
	// and events ("default" or a path).
	Layer  fs.FS
	Source string
	// Dir is the directory Layer was opened from, if it was: Watch
	// watches it. "" means a layer that changes only when repacked.
	Dir string
	Bus *event.Bus
	Log *slog.Logger
	// AfterSwap runs after each new generation starts, not after the
	// first: New's caller runs it for that one once it is ready to (the
	// cache GC must wait for the tokens that pin blobs).
	AfterSwap func(ctx context.Context, g proxy.Generation)
}

// New packs the first generation of o.Layer, publishing a LayerPacked
// event either way.
func New(ctx context.Context, o Options) (*Reloader, error) {
	r := &Reloader{st: o.Store, src: o.Layer, source: o.Source, dir: o.Dir, bus: o.Bus, log: o.Log, afterSwap: o.AfterSwap}
	var fp [sha256.Size]byte
	if o.Dir != "" {
		// Before the pack, so that an edit during it shows as a change.
		fp, _ = fingerprint(ctx, o.Layer)
	}
	gen, err := r.packFirst(ctx)
	if err != nil {
		return nil, err
	}
	r.start(gen, fp)
	return r, nil
}

// packFirst packs generation 1.
func (r *Reloader) packFirst(ctx context.Context) (proxy.Generation, error) {
	start := time.Now()
	set, err := layer.PackSet(ctx, r.src, r.st)
	ev := event.LayerPacked{Generation: 1, Source: r.source, Duration: time.Since(start)}
	publish := func() {
		ev.Time = r.bus.Now()
		r.bus.Publish(ev)
	}
	if err != nil {
		ev.Err = err.Error()
		publish()
		return proxy.Generation{}, fmt.Errorf("pack layer %s: %w", r.source, err)
	}
	ev.TarDigest, ev.GzipDigest = set.Common.TarDigest.String(), set.Common.GzipDigest.String()
	ev.GzipSize, ev.Files = set.Common.GzipSize, set.Common.Files
	for p := range set.Platforms {
		ev.Platforms = append(ev.Platforms, p)
	}
	sort.Strings(ev.Platforms)
	publish()
	return proxy.NewGeneration(1, set)
}

// reload packs the layer directory again and starts a new generation if
// the layers changed. On any error the previous generation keeps serving;
// the error goes to the log and the event stream, and is returned.
func (r *Reloader) reload(ctx context.Context, trigger string) (proxy.Generation, bool, error) {
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

// Repack reloads even if the fingerprint says the tree is unchanged: the
// user asked for it, perhaps because the fingerprint missed an edit.
func (r *Reloader) Repack(ctx context.Context) error {
	r.mu.Lock()
	r.fp = [sha256.Size]byte{}
	r.mu.Unlock()
	_, _, err := r.reload(ctx, TriggerManual)
	return err
}
