// Package cachegc is the cache's GC policy: the store is trimmed to its
// limit when a new layer generation starts and each time it has grown by an
// eighth of that limit, keeping the current generation's layers and what
// was used in the last ten minutes.
package cachegc

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

// grace spares blobs used recently from GC, whatever the size: a client
// that got a manifest a moment ago is about to fetch its config and layers,
// and a reload must not pull them from under it.
const grace = 10 * time.Minute

// Collect trims the store to maxBytes, keeping the layers of the current
// generation. It runs when the daemon starts and after each new generation,
// the moments when the store grows by a layer set.
func Collect(ctx context.Context, st *store.Store, maxBytes int64, gen proxy.Generation, log *slog.Logger) {
	if maxBytes == 0 {
		maxBytes = config.DefaultCacheMaxBytes
	}
	current := map[v1.Hash]bool{gen.Set.Common.GzipDigest: true}
	for _, b := range gen.Set.Platforms {
		current[b.GzipDigest] = true
	}
	stats, err := st.GC(ctx, maxBytes, grace, func(h v1.Hash) bool { return current[h] })
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

// GC trims the store as it grows, whatever grows it (cached upstream
// blobs, rewritten manifests and configs, records): it runs Collect once
// the store has grown by an eighth of its limit since the last run, in the
// background, one run at a time, under the daemon's lifetime: Stop ends
// the run in flight and waits for it, so none outlives the daemon.
type GC struct {
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

// New returns the GC of st, which keeps the layers of layers' current
// generation; ctx bounds its runs along with Stop.
func New(ctx context.Context, st *store.Store, layers proxy.Layers, maxBytes int64, log *slog.Logger) *GC {
	ctx, cancel := context.WithCancel(ctx)
	return &GC{st: st, layers: layers, maxBytes: maxBytes, log: log, ctx: ctx, cancel: cancel}
}

// Grew counts n bytes written to the store, and starts a run once they
// add up to an eighth of the limit; the store's OnWrite.
func (g *GC) Grew(n int64) {
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
	// Under mu: Stop, which sets stopped under it, then waits after
	// every Add.
	g.runs.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.runs.Done()
		Collect(g.ctx, g.st, g.maxBytes, g.layers.Current(), g.log)
		g.mu.Lock()
		g.running = false
		g.mu.Unlock()
	}()
}

// Stop ends the run in flight, if any, waits for it, and starts no more.
func (g *GC) Stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.runs.Wait()
}
