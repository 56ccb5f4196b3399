package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Retention. The store records a blob's last use in its mtime: filesystems
// mounted relatime or noatime do not keep atime current, and a blob's mtime
// has no other use once it is in place (it is never written again).
const (
	// touchEvery limits how often a read rewrites a blob's mtime: the LRU
	// order needs minutes, not every read of a busy blob.
	touchEvery = time.Minute
	// staleTmp is the age past which a file in tmp/ is a leftover of a
	// crashed write. A live write takes seconds; another daemon sharing the
	// cache may be writing, so younger files are left alone.
	staleTmp = time.Hour
)

// pins holds digests that GC must keep, with a count per digest so that
// two holders can pin the same blob.
type pins struct {
	mu sync.Mutex
	m  map[v1.Hash]int
}

// Pin keeps the blobs hs through every GC until the returned func is
// called (once).
func (s *Store) Pin(hs ...v1.Hash) (unpin func()) {
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	if s.pins.m == nil {
		s.pins.m = make(map[v1.Hash]int)
	}
	for _, h := range hs {
		s.pins.m[h]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.pins.mu.Lock()
			defer s.pins.mu.Unlock()
			for _, h := range hs {
				if s.pins.m[h]--; s.pins.m[h] <= 0 {
					delete(s.pins.m, h)
				}
			}
		})
	}
}

func (s *Store) pinned(h v1.Hash) bool {
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	return s.pins.m[h] > 0
}

// touch records a use of the blob at p, for the LRU order of GC.
func touch(p string, mtime time.Time) {
	now := time.Now()
	if now.Sub(mtime) < touchEvery {
		return
	}
	// Best effort: a blob that cannot be touched is only collected sooner.
	_ = os.Chtimes(p, time.Time{}, now)
}

// GCStats is what a GC did.
type GCStats struct {
	// Before and After are the blobs' total size, in bytes.
	Before, After int64
	// Removed counts the blobs deleted.
	Removed int
}

// GC deletes blobs, least recently used first, until the blobs take at
// most maxBytes. It never deletes a pinned blob, one for which keep
// returns true, or one used within grace: a pull that just fetched a
// manifest is about to fetch its config and layers. Records are left:
// one naming a blob that is gone reads as a cache miss.
//
// A blob opened for reading when it is deleted is still read whole (the
// open file outlives its name), so GC never cuts a transfer short.
func (s *Store) GC(ctx context.Context, maxBytes int64, grace time.Duration, keep func(v1.Hash) bool) (GCStats, error) {
	type blob struct {
		h     v1.Hash
		size  int64
		mtime time.Time
	}
	dir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return GCStats{}, fmt.Errorf("gc: %w", err)
	}
	var blobs []blob
	var st GCStats
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		st.Before += info.Size()
		blobs = append(blobs, blob{v1.Hash{Algorithm: "sha256", Hex: e.Name()}, info.Size(), info.ModTime()})
	}
	st.After = st.Before
	if maxBytes < 0 || st.Before <= maxBytes {
		return st, nil
	}
	slices.SortFunc(blobs, func(a, b blob) int { return a.mtime.Compare(b.mtime) })
	recent := time.Now().Add(-grace)
	for _, b := range blobs {
		if st.After <= maxBytes {
			break
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if b.mtime.After(recent) || s.pinned(b.h) || (keep != nil && keep(b.h)) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, b.h.Hex)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("gc: %w", err)
		}
		st.After -= b.size
		st.Removed++
	}
	return st, nil
}

// cleanTmp removes what crashed writes left in tmp/.
func cleanTmp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	old := time.Now().Add(-staleTmp)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || info.ModTime().After(old) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
	}
	return nil
}
