package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
)

// gcGrace spares blobs used recently from GC, whatever the size: a client
// that got a manifest a moment ago is about to fetch its config and layers,
// and a reload must not pull them from under it.
const gcGrace = 10 * time.Minute

// collect trims the store to maxBytes, keeping the layers of the current
// generation. It runs when the daemon starts and after each new generation,
// the moments when the store grows by a layer set.
func collect(ctx context.Context, st *store.Store, maxBytes int64, gen proxy.Generation, log *slog.Logger) {
	if maxBytes == 0 {
		maxBytes = config.DefaultCacheMaxBytes
	}
	current := map[v1.Hash]bool{gen.Set.Common.GzipDigest: true}
	for _, b := range gen.Set.Platforms {
		current[b.GzipDigest] = true
	}
	stats, err := st.GC(ctx, maxBytes, gcGrace, func(h v1.Hash) bool { return current[h] })
	if err != nil {
		log.Warn("cache gc", "error", err)
		return
	}
	if stats.Removed > 0 {
		log.Info("cache gc", "removed", stats.Removed, "before", stats.Before, "after", stats.After, "limit", maxBytes)
	}
	if stats.After > maxBytes && maxBytes >= 0 {
		log.Debug("cache over its limit after gc: the rest is in use", "after", stats.After, "limit", maxBytes)
	}
}

// cacheGC trims the store as it grows, whatever grows it (cached upstream
// blobs, rewritten manifests and configs, records): it runs collect once
// the store has grown by an eighth of its limit since the last run, in the
// background, one run at a time, under the daemon's lifetime: stop ends
// the run in flight and waits for it, so none outlives the daemon.
type cacheGC struct {
	st       *store.Store
	layers   proxy.Layers
	maxBytes int64
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc

	mu      sync.Mutex
	grown   int64
	running bool
	stopped bool
	runs    sync.WaitGroup
}

func newCacheGC(ctx context.Context, st *store.Store, layers proxy.Layers, maxBytes int64, log *slog.Logger) *cacheGC {
	ctx, cancel := context.WithCancel(ctx)
	return &cacheGC{st: st, layers: layers, maxBytes: maxBytes, log: log, ctx: ctx, cancel: cancel}
}

func (g *cacheGC) grew(n int64) {
	limit := g.maxBytes
	if limit == 0 {
		limit = config.DefaultCacheMaxBytes
	}
	if limit < 0 {
		return
	}
	g.mu.Lock()
	g.grown += n
	if g.running || g.stopped || g.grown < limit/8 {
		g.mu.Unlock()
		return
	}
	g.grown, g.running = 0, true
	// Under mu: stop, which sets stopped under it, then waits after
	// every Add.
	g.runs.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.runs.Done()
		collect(g.ctx, g.st, g.maxBytes, g.layers.Current(), g.log)
		g.mu.Lock()
		g.running = false
		g.mu.Unlock()
	}()
}

// stop ends the run in flight, if any, waits for it, and starts no more.
func (g *cacheGC) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.runs.Wait()
}
