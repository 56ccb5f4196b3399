package cachegc

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
	"github.com/tower-reg/tower-reg/layer"
)

// TestCacheGCStop: a run that the store's growth started is over when Stop
// returns (it has logged its outcome), and growth after Stop starts none.
func TestCacheGCStop(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := layer.PackSet(t.Context(), fstest.MapFS{"f": {Data: []byte("x")}}, st)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := proxy.NewGeneration(1, set)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const limit = 1 // bytes: any store is over it, and its fresh blobs are spared
	gc := New(t.Context(), st, proxy.StaticLayers{Gen: gen}, limit, log)
	gc.Grew(limit)
	gc.Stop()
	const ran = "cache over its limit after gc"
	if n := strings.Count(logs.String(), ran); n != 1 {
		t.Fatalf("after stop the log has %d runs, want 1:\n%s", n, logs.String())
	}
	gc.Grew(limit)
	gc.Stop()
	if n := strings.Count(logs.String(), ran); n != 1 {
		t.Errorf("growth after stop started a run:\n%s", logs.String())
	}
	if err := gc.ctx.Err(); err != context.Canceled {
		t.Errorf("the runs' context after stop: %v, want canceled", err)
	}
}
