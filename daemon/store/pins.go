package store

import (
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pins holds what GC must keep, blobs and records, with a count per file
// so that two holders can pin the same one. Keys are paths relative to
// the store's root, the names GC sees.
type pins struct {
	mu sync.Mutex
	m  map[string]int
}

// Pin keeps the blobs hs through every GC until the returned func is
// called (once).
func (s *Store) Pin(hs ...v1.Hash) (unpin func()) {
	keys := make([]string, 0, len(hs))
	for _, h := range hs {
		keys = append(keys, blobKey(h))
	}
	return s.pins.add(keys)
}

// PinRecord keeps the record (with no owner) under kind and key through
// every GC until the returned func is called (once): a container token
// needs the record of its layer generation for as long as it lives.
func (s *Store) PinRecord(kind, key string) (unpin func(), err error) {
	p, err := s.recordPath(noOwner, kind, key)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(s.root, p)
	if err != nil {
		return nil, err
	}
	return s.pins.add([]string{rel}), nil
}

func blobKey(h v1.Hash) string { return filepath.Join("blobs", "sha256", h.Hex) }

func (p *pins) add(keys []string) (unpin func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]int)
	}
	for _, k := range keys {
		p.m[k]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, k := range keys {
				if p.m[k]--; p.m[k] <= 0 {
					delete(p.m, k)
				}
			}
		})
	}
}

// has reports whether the file at rel (relative to the root) is pinned.
func (p *pins) has(rel string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[rel] > 0
}
