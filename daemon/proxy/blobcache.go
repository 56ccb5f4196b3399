package proxy

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/store"
)

// BlobCache keeps an upstream blob in the store while it streams to a
// client, so that the next pull of it is served from the store: from disk,
// without the upstream and without hashing it again. The blob is linked to
// the repository in the Rewriting's scope only, like everything else it
// stores.
type BlobCache struct {
	rw   *Rewriting
	repo Repo
	w    *store.Writer
	n    int64
	err  error
}

// CacheBlob starts caching an upstream blob of repo. It returns nil when
// the store cannot take one now; the stream goes on without it.
func (rw *Rewriting) CacheBlob(ctx context.Context, repo Repo) *BlobCache {
	w, err := rw.store.CreateVerified(ctx)
	if err != nil {
		return nil
	}
	return &BlobCache{rw: rw, repo: repo, w: w}
}

// Write never fails: a cache that cannot write (a full disk) stops
// caching, and the client's stream goes on.
func (c *BlobCache) Write(p []byte) (int, error) {
	if c.err == nil {
		n, err := c.w.Write(p)
		c.n += int64(n)
		c.err = err
	}
	return len(p), nil
}

// Keep commits the blob under d and links it to the repository. The
// caller must have checked that exactly the bytes written hash to d.
func (c *BlobCache) Keep(ctx context.Context, d v1.Hash) error {
	defer c.w.Close()
	if c.err != nil {
		return fmt.Errorf("cache blob %s: %w", d, c.err)
	}
	if err := c.w.Commit(ctx, d); err != nil {
		return fmt.Errorf("cache blob %s: %w", d, err)
	}
	return c.rw.link(ctx, c.repo, d)
}

// Discard drops the blob.
func (c *BlobCache) Discard() { c.w.Close() }
