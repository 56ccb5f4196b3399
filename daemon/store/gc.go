package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	// Before and After are the store's cost (see GC), in bytes.
	Before, After int64
	// Removed counts the files deleted, blobs and records.
	Removed int
}

// GC deletes blobs and records, least recently used first, until the store
// costs at most maxBytes. It never deletes a pinned blob or record, a blob
// for which keep returns true, or anything used within grace: a pull that
// just fetched a manifest is about to fetch its config and layers.
//
// Every file counts, at its size rounded up to a whole block of
// blockSize, and so does each record directory: a 60-byte record takes a
// block on disk (and an inode), and counting its bytes would let a
// million of them pass for 60 MB. Blobs round up the same way.
//
// A blob and the records it owns (see PutRecordOf) go together, as one
// unit last used when the most recent of them was: a manifest the store
// holds keeps the records that serve it, and a record never outlives its
// blob for long. The records of a blob that is kept or pinned are
// collected one by one instead: such a blob (the current layer) can be
// linked from any number of repositories, and its records must not grow
// without bound.
//
// A blob opened for reading when it is deleted is still read whole (the
// open file outlives its name), so GC never cuts a transfer short.
func (s *Store) GC(ctx context.Context, maxBytes int64, grace time.Duration, keep func(v1.Hash) bool) (st GCStats, err error) {
	inv, err := s.scan()
	if err != nil {
		return GCStats{}, fmt.Errorf("gc: %w", err)
	}
	st = GCStats{Before: inv.total, After: inv.total}
	if maxBytes < 0 || st.Before <= maxBytes {
		return st, nil
	}
	units := s.units(inv, keep)
	slices.SortFunc(units, func(a, b unit) int { return a.lastUse.Compare(b.lastUse) })
	recent := time.Now().Add(-grace)
	defer func() {
		if st.Removed > 0 {
			s.collections.Add(1)
		}
	}()
	for _, u := range units {
		if st.After <= maxBytes || u.lastUse.After(recent) {
			break // sorted: the rest is more recent still
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, freed, err := s.remove(u)
		st.Removed += n
		st.After -= freed
		if err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
	}
	st.After -= s.removeEmptyDirs(inv.dirs)
	return st, nil
}

// blockSize is what GC counts a file as, at least, and the unit its size
// is rounded up to: the usual filesystem block (ext4, xfs, apfs).
const blockSize = 4096

// fileCost is what a file of size bytes costs toward the store's limit.
func fileCost(size int64) int64 {
	if size <= 0 {
		return blockSize
	}
	return (size + blockSize - 1) / blockSize * blockSize
}

// file is one file GC may delete, by its path relative to the root.
type file struct {
	rel   string
	cost  int64
	mtime time.Time
}

// group is a blob (nil when it is gone) and the records it owns.
type group struct {
	blob    *file
	records []file
}

// inventory is what the store holds, as GC sees it.
type inventory struct {
	groups map[string]*group // by owner hex
	loose  []file            // records with no owner
	dirs   []file            // record directories
	total  int64
}

// unit is what GC deletes at once: the blob first, then its records.
type unit struct {
	files   []file
	cost    int64
	lastUse time.Time
}

func (s *Store) scan() (*inventory, error) {
	inv := &inventory{groups: map[string]*group{}}
	blobs, err := s.list(filepath.Join("blobs", "sha256"))
	if err != nil {
		return nil, err
	}
	for _, b := range blobs {
		inv.total += b.cost
		inv.group(filepath.Base(b.rel)).blob = &b
	}
	kinds, err := os.ReadDir(filepath.Join(s.root, "records"))
	if err != nil {
		return nil, err
	}
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		rel := filepath.Join("records", k.Name())
		inv.dirs = append(inv.dirs, file{rel: rel, cost: blockSize})
		inv.total += blockSize
		recs, err := s.list(rel)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			inv.total += r.cost
			if o, ok := recordOwner(filepath.Base(r.rel)); ok {
				g := inv.group(o.Hex)
				g.records = append(g.records, r)
			} else {
				inv.loose = append(inv.loose, r)
			}
		}
	}
	return inv, nil
}

func (inv *inventory) group(hex string) *group {
	g := inv.groups[hex]
	if g == nil {
		g = &group{}
		inv.groups[hex] = g
	}
	return g
}

// list returns the regular files in the directory rel.
func (s *Store) list(rel string) ([]file, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, rel))
	if err != nil {
		return nil, err
	}
	var found []file
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the directory was read
		}
		if err != nil {
			return nil, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		found = append(found, file{rel: filepath.Join(rel, e.Name()), cost: fileCost(info.Size()), mtime: info.ModTime()})
	}
	return found, nil
}

// units splits the inventory into what GC may delete: pinned and kept
// blobs, and pinned records, are in no unit.
func (s *Store) units(inv *inventory, keep func(v1.Hash) bool) []unit {
	var us []unit
	for hex, g := range inv.groups {
		h := v1.Hash{Algorithm: "sha256", Hex: hex}
		if g.blob != nil && (s.pins.has(g.blob.rel) || keep != nil && keep(h)) {
			for _, r := range g.records {
				us = append(us, unitOf(r))
			}
			continue
		}
		var u unit
		if g.blob != nil {
			u = unitOf(*g.blob)
		}
		for _, r := range g.records {
			u.add(r)
		}
		us = append(us, u)
	}
	for _, r := range inv.loose {
		if !s.pins.has(r.rel) {
			us = append(us, unitOf(r))
		}
	}
	return us
}

func unitOf(f file) unit {
	var u unit
	u.add(f)
	return u
}

func (u *unit) add(f file) {
	u.files = append(u.files, f)
	u.cost += f.cost
	if f.mtime.After(u.lastUse) {
		u.lastUse = f.mtime
	}
}

// remove deletes the files of u, blob first: if it stops half way, what
// is left are records of a missing blob, which read as a cache miss.
func (s *Store) remove(u unit) (n int, freed int64, err error) {
	for _, f := range u.files {
		if err := os.Remove(filepath.Join(s.root, f.rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, freed, err
		}
		n++
		freed += f.cost
	}
	return n, freed, nil
}

// removeEmptyDirs removes the record directories left empty, and returns
// what they cost. A directory with files in it is not removed (the error
// says so, and is ignored); a record written into a directory removed
// under it is written again (see writeRecord).
func (s *Store) removeEmptyDirs(dirs []file) (freed int64) {
	for _, d := range dirs {
		if os.Remove(filepath.Join(s.root, d.rel)) == nil {
			freed += d.cost
		}
	}
	return freed
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
