package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

// ErrNotFound is returned for a digest or record the store does not hold.
var ErrNotFound = errors.New("not in store")

// ErrDigestMismatch is returned when written bytes do not hash to the digest
// they were committed under.
var ErrDigestMismatch = errors.New("digest mismatch")

const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// Store is a content-addressed store rooted at one directory.
type Store struct {
	root string
	pins pins
	// onWrite is told the cost of each file written (see OnWrite).
	onWrite atomic.Pointer[func(cost int64)]
	// collections counts the GCs that removed files (see Collections).
	collections atomic.Uint64
	// writeback starts writing a range of a blob being written to disk
	// (startWriteback); a test counts the calls.
	writeback func(f *os.File, off, n int64) error
}

// Collections counts the GCs that removed something since Open. A cache
// in memory in front of the store forgets what it holds when the count
// moves: it may hold what GC just removed.
func (s *Store) Collections() uint64 { return s.collections.Load() }

// OnWrite has fn called with the cost (see GC) of each blob and record
// the store writes, from the writer's goroutine: the daemon runs GC once
// the store has grown enough, whatever grew it.
func (s *Store) OnWrite(fn func(cost int64)) { s.onWrite.Store(&fn) }

func (s *Store) wrote(cost int64) {
	if fn := s.onWrite.Load(); fn != nil {
		(*fn)(cost)
	}
}

// Open creates (if needed) and opens the store at root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "records", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), dirPerm); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	if err := cleanTmp(filepath.Join(root, "tmp")); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Store{root: root, writeback: startWriteback}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return "", fmt.Errorf("unsupported digest %q", h)
	}
	if _, err := hex.DecodeString(h.Hex); err != nil {
		return "", fmt.Errorf("malformed digest %q", h)
	}
	return filepath.Join(s.root, "blobs", "sha256", h.Hex), nil
}

// Stat returns the size of the blob h.
func (s *Store) Stat(h v1.Hash) (int64, error) {
	p, err := s.blobPath(h)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", h, err)
	}
	return fi.Size(), nil
}

// OpenBlob opens the blob h for reading. The caller closes it.
func (s *Store) OpenBlob(h v1.Hash) (*os.File, error) {
	p, err := s.blobPath(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", h, err)
	}
	if info, err := f.Stat(); err == nil {
		touch(p, info.ModTime())
	}
	return f, nil
}

// ReadBlob reads a small blob (a manifest or config) whole.
func (s *Store) ReadBlob(h v1.Hash) ([]byte, error) {
	f, err := s.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	return b, nil
}

// PutBytes stores b and returns its digest.
func (s *Store) PutBytes(ctx context.Context, b []byte) (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return v1.Hash{}, err
	}
	if p, err := s.blobPath(h); err == nil {
		if info, err := os.Stat(p); err == nil {
			// Stored again is used again.
			touch(p, info.ModTime())
			return h, nil
		}
	}
	w, err := s.Create(ctx)
	if err != nil {
		return v1.Hash{}, err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return v1.Hash{}, err
	}
	return h, w.Commit(ctx, h)
}

// Create starts a new blob. Write to it, then Commit it under its digest;
// Close discards it unless it was committed.
func (s *Store) Create(ctx context.Context) (layer.BlobWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	return &Writer{s: s, f: f, h: sha256.New()}, nil
}

// CreateVerified starts a blob whose bytes the caller hashes itself, as it
// streams them elsewhere too: Commit then trusts the digest it is given
// instead of hashing the bytes a second time. Only a caller that has
// checked the digest of exactly the bytes it wrote may commit.
func (s *Store) CreateVerified(ctx context.Context) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	return &Writer{s: s, f: f}, nil
}

// writebackWindow is how many bytes a Writer lets pile up in the page
// cache before it has the kernel start writing them to disk.
const writebackWindow = 8 << 20

// Writer is a blob being written to the store.
type Writer struct {
	s *Store
	f *os.File
	h hash.Hash
	n int64
	// started is how much of the file writeback was started for.
	started int64
	done    bool
}

// Write implements io.Writer.
//
// Every writebackWindow bytes it starts writing them to disk, without
// waiting. Otherwise the whole blob waits in the page cache for Commit's
// fsync, which then writes it all at once: just when the client that
// streamed the same bytes fsyncs its own copy (skopeo fsyncs each blob),
// so both wait on the disk together. Written as they arrive, the blob
// reaches the disk while it is idle, and the fsync finds little left. Two
// daemons against one upstream, 10 cold pulls of 256 MiB each in turn:
// 1.45 times a direct pull without, 1.34 with.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	if w.n-w.started >= writebackWindow {
		// Only a hint: Commit's fsync is what must succeed, and reports
		// any write error.
		_ = w.s.writeback(w.f, w.started, w.n-w.started)
		w.started = w.n
	}
	return n, err
}

// OpenRead opens the blob being written for reading from its start, while
// it is still being written: what Write wrote is there to read.
func (w *Writer) OpenRead() (*os.File, error) {
	f, err := os.Open(w.f.Name())
	if err != nil {
		return nil, fmt.Errorf("read back blob: %w", err)
	}
	return f, nil
}

// Commit checks that the written bytes hash to digest and moves the blob into
// place atomically.
func (w *Writer) Commit(ctx context.Context, digest v1.Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.h != nil {
		got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
		if got != digest {
			return fmt.Errorf("commit blob: wrote %s, want %s: %w", got, digest, ErrDigestMismatch)
		}
	}
	dst, err := w.s.blobPath(digest)
	if err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("commit blob %s: %w", digest, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("commit blob %s: %w", digest, err)
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		return fmt.Errorf("commit blob %s: %w", digest, err)
	}
	w.done = true
	w.s.wrote(fileCost(w.n))
	return nil
}

// Close discards the blob unless it was committed.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

var _ layer.BlobWriter = (*Writer)(nil)
