package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// errBlobMismatch is a whole upstream blob whose bytes do not match its
// digest.
var errBlobMismatch = fmt.Errorf("blob: %w", ErrDigestMismatch)

// Chunks of a verified copy: a fixed set per transfer, whatever the blob's
// size, so memory is bounded by the number of transfers.
const (
	verifyChunkSize = 512 << 10
	verifyChunks    = 6
)

// chunk is a buffer shared by the hasher and the client writer: it is
// free again once both are done with it.
type chunk struct {
	b    []byte
	refs atomic.Int32
}

// copyVerified streams src to dst while hashing it, and holds the last chunk
// back until the hash is known: a blob that does not match its digest never
// reaches the client whole.
//
// Reading, hashing and writing to the client each run in a goroutine of
// their own, a chunk apart: on a small machine the proxy, the upstream and
// the client share the cores, and any two of the three done in line would
// leave the upstream or the client waiting while the other is served.
//
// tee, when not nil, gets every byte too, in order, from the hashing
// goroutine: it must not hold on to the slices it is given.
func copyVerified(dst io.Writer, src io.Reader, want v1.Hash, tee io.Writer) error {
	free := make(chan *chunk, verifyChunks)
	for range verifyChunks {
		free <- &chunk{b: make([]byte, verifyChunkSize)}
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c
		}
	}

	h := sha256.New()
	toHash, hashed := make(chan *chunk, verifyChunks), make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range toHash {
			h.Write(c.b)
			if tee != nil {
				tee.Write(c.b)
			}
			release(c)
		}
	}()

	// The writer keeps taking chunks after a failed write, releasing them
	// unwritten, so the reader never waits on a writer that has stopped.
	toSend, sent := make(chan *chunk, verifyChunks), make(chan error, 1)
	var writeFailed atomic.Bool
	go func() {
		var werr error
		for c := range toSend {
			if werr == nil {
				if _, werr = dst.Write(c.b); werr != nil {
					writeFailed.Store(true)
				}
			}
			release(c)
		}
		sent <- werr
	}()

	// Both goroutines are stopped before return, so h is safe to read and
	// no goroutine outlives the request.
	stopHash := func() {
		close(toHash)
		<-hashed
	}
	stopSend := func(last *chunk) error {
		if last != nil {
			toSend <- last
		}
		close(toSend)
		return <-sent
	}

	var held *chunk // read and sent to the hasher, not yet to the client
	for {
		c := <-free
		n, err := fill(src, c.b[:verifyChunkSize])
		if n > 0 {
			c.b = c.b[:n]
			c.refs.Store(2)
			toHash <- c
			// Only now that a later chunk exists may the held one go out:
			// the last chunk waits for the digest.
			if held != nil {
				toSend <- held
			}
			held = c
		} else {
			free <- c
		}
		if writeFailed.Load() {
			stopHash()
			return stopSend(nil)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			stopHash()
			stopSend(nil)
			return fmt.Errorf("%w: reading upstream blob %s: %w", ErrUnavailable, want, err)
		}
	}
	stopHash()
	if got := hex.EncodeToString(h.Sum(nil)); want.Algorithm != "sha256" || got != want.Hex {
		stopSend(nil)
		return fmt.Errorf("%w: %s hashes to sha256:%s", errBlobMismatch, want, got)
	}
	if held == nil {
		// An empty blob: its answer still goes out, with no bytes.
		stopSend(nil)
		_, err := dst.Write(nil)
		return err
	}
	return stopSend(held)
}

// fill reads into buf until it is full or src ends. It returns io.EOF only
// for the normal end of src, never for a truncated body, whose error it
// passes on as it is.
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
