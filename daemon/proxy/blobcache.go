package proxy

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

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
	// err is the first write error, read once writing is over (Keep).
	err error
	// stopped is set with err. The client's goroutine reads it (next)
	// while the tee may still be writing a later chunk.
	stopped atomic.Bool
	// r reads back what w wrote, for next, from the client's goroutine
	// only; opened on first use.
	r *os.File
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
		if err != nil {
			c.err = err
			c.stopped.Store(true)
		}
	}
	return len(p), nil
}

// next reads the next n bytes written back from the file, for the
// client: as an *os.File under one io.LimitedReader, the form the TCP
// connection sends with sendfile. It is false once a write failed (false
// for a chunk kept whole too, if a later one failed already: the caller
// then has it in memory), or when the file cannot be read back.
func (c *BlobCache) next(n int) (io.Reader, bool) {
	if c.stopped.Load() {
		return nil, false
	}
	if c.r == nil {
		r, err := c.w.OpenRead()
		if err != nil {
			return nil, false
		}
		c.r = r
	}
	return &io.LimitedReader{R: c.r, N: int64(n)}, true
}

// close releases the writer and the reader of the file.
func (c *BlobCache) close() {
	c.w.Close()
	if c.r != nil {
		c.r.Close()
	}
}

// Keep commits the blob under d and links it to the repository. The
// caller must have checked that exactly the bytes written hash to d.
func (c *BlobCache) Keep(ctx context.Context, d v1.Hash) error {
	defer c.close()
	if c.err != nil {
		return fmt.Errorf("cache blob %s: %w", d, c.err)
	}
	if err := c.w.Commit(ctx, d); err != nil {
		return fmt.Errorf("cache blob %s: %w", d, err)
	}
	return c.rw.link(ctx, c.repo, d)
}

// Discard drops the blob.
func (c *BlobCache) Discard() { c.close() }
