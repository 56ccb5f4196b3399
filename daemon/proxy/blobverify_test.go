package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/store"
)

// client is copyVerified's dst as the HTTP connection is: it takes chunks
// by Write, and files by ReadFrom, which it counts apart (sendfile, for
// the TCP connection) when they come as the connection's sendfile takes
// them, an *os.File under one io.LimitedReader.
type client struct {
	got      bytes.Buffer
	written  int // bytes given by Write
	sendfile int // bytes given as a file
}

func (c *client) Write(p []byte) (int, error) {
	c.written += len(p)
	return c.got.Write(p)
}

func (c *client) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.got.ReadFrom(r)
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			c.sendfile += int(n)
			return n, err
		}
	}
	c.written += int(n)
	return n, err
}

// stopsKeeping is the store's tee on a disk that fills after the first
// `after` bytes: it keeps nothing more, and says so.
type stopsKeeping struct {
	*BlobCache
	after, n int
}

func (s *stopsKeeping) Write(p []byte) (int, error) {
	if s.n += len(p); s.n > s.after && s.err == nil {
		s.err = errors.New("no space left on device")
		s.stopped.Store(true)
	}
	return s.BlobCache.Write(p)
}

// shortFile hands back one byte less of each chunk than it was given.
type shortFile struct{}

func (shortFile) Write(p []byte) (int, error) { return len(p), nil }

func (shortFile) next(n int) (io.Reader, bool) {
	return io.LimitReader(bytes.NewReader(make([]byte, n)), int64(n-1)), true
}

// TestCopyVerified checks the hold-back: a good blob arrives whole, and of a
// bad or truncated one the last chunk never arrives, whatever the sizes,
// the chunk boundaries and the tee: a store's tee sends the client its
// bytes from the file it keeps, until it stops keeping.
func TestCopyVerified(t *testing.T) {
	const chunk = 512 << 10
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rw := &Rewriting{store: st}
	cache := func(t *testing.T) *BlobCache {
		c := rw.CacheBlob(context.Background(), Repo{})
		if c == nil {
			t.Fatal("the store takes no blob")
		}
		t.Cleanup(c.Discard)
		return c
	}
	tees := []struct {
		name string
		tee  func(t *testing.T) io.Writer
		// fromFile is how many of size bytes the client may get as a
		// file, at least and at most; the rest comes by Write.
		fromFile func(size int) (lo, hi int)
	}{
		{"no tee", func(*testing.T) io.Writer { return nil }, func(int) (int, int) { return 0, 0 }},
		{"memory", func(*testing.T) io.Writer { return new(bytes.Buffer) }, func(int) (int, int) { return 0, 0 }},
		{"store", func(t *testing.T) io.Writer { return cache(t) }, func(size int) (int, int) { return size, size }},
		// Once the tee stopped, a chunk it did keep may come from memory
		// too (it may have stopped on a later chunk already); what it
		// did not keep never comes from the file.
		{"store, disk full after a chunk", func(t *testing.T) io.Writer { return &stopsKeeping{BlobCache: cache(t), after: chunk} },
			func(size int) (int, int) { return 0, min(size, chunk) }},
	}
	sizes := []int{0, 1, 1000, chunk - 1, chunk, chunk + 1, 3 * chunk, 3*chunk + 7}
	for _, tc := range tees {
		for _, size := range sizes {
			blob := bytes.Repeat([]byte{'x', 'y', 'z'}, size/3+1)[:size]
			sum := sha256.Sum256(blob)
			good := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
			bad := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(make([]byte, 32))}

			t.Run(tc.name+"/good", func(t *testing.T) {
				var out client
				if err := copyVerified(&out, iotest.HalfReader(bytes.NewReader(blob)), good, tc.tee(t)); err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				if !bytes.Equal(out.got.Bytes(), blob) {
					t.Fatalf("size %d: wrote %d bytes, want the %d of the blob", size, out.got.Len(), size)
				}
				if lo, hi := tc.fromFile(size); out.sendfile < lo || out.sendfile > hi || out.sendfile+out.written != size {
					t.Fatalf("size %d: %d bytes sent from the file and %d written, want %d to %d from the file", size, out.sendfile, out.written, lo, hi)
				}
			})
			t.Run(tc.name+"/mismatch", func(t *testing.T) {
				var out client
				err := copyVerified(&out, bytes.NewReader(blob), bad, tc.tee(t))
				if !errors.Is(err, errBlobMismatch) {
					t.Fatalf("size %d: error %v, want a mismatch", size, err)
				}
				if size > 0 && out.got.Len() >= size {
					t.Fatalf("size %d: all %d bytes of a bad blob were written", size, out.got.Len())
				}
			})
			if size == 0 {
				continue
			}
			t.Run(tc.name+"/truncated", func(t *testing.T) {
				var out client
				src := io.MultiReader(bytes.NewReader(blob[:size/2]), iotest.ErrReader(io.ErrUnexpectedEOF))
				err := copyVerified(&out, src, good, tc.tee(t))
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("size %d: error %v, want the upstream's unexpected EOF", size, err)
				}
				if out.got.Len() >= size/2 && size/2 > 0 {
					t.Fatalf("size %d: all %d bytes read were written before the error", size, out.got.Len())
				}
			})
		}
	}
}

// TestCopyVerifiedTee: the tee gets every byte, in order, with a client or
// without one (a blob only kept, for a range); and a tee whose file hands
// back less than it was given is an error, never a short body taken for a
// whole one.
func TestCopyVerifiedTee(t *testing.T) {
	blob := bytes.Repeat([]byte("tee"), 700_000)
	sum := sha256.Sum256(blob)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	for _, tc := range []struct {
		name string
		dst  io.Writer
	}{{"to a client", new(client)}, {"kept only", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			var tee bytes.Buffer
			if err := copyVerified(tc.dst, iotest.HalfReader(bytes.NewReader(blob)), d, &tee); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tee.Bytes(), blob) {
				t.Fatalf("the tee got %d bytes, want the %d of the blob in order", tee.Len(), len(blob))
			}
		})
	}
	t.Run("a file shorter than written", func(t *testing.T) {
		var out client
		err := copyVerified(&out, bytes.NewReader(blob), d, shortFile{})
		if !errors.Is(err, io.ErrShortWrite) {
			t.Fatalf("error %v, want a short write", err)
		}
	})
}
