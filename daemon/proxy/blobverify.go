package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// errBlobMismatch is a whole upstream blob whose bytes do not match its
// digest.
var errBlobMismatch = fmt.Errorf("blob: %w", ErrDigestMismatch)

// copyVerified streams src to dst while hashing it, and holds the last chunk
// back until the hash is known: a blob that does not match its digest never
// reaches the client whole.
//
// Hashing runs in its own goroutine, a chunk behind the network: on a small
// machine the proxy, the upstream and the client share the cores, and a
// hash in line with the copy would stall reading and writing alike. Memory
// is a fixed set of chunks whatever the blob's size.
//
// tee, when not nil, gets every byte too, in order, from the hashing
// goroutine: it must not hold on to the slices it is given. A tee that
// keeps them in a file (a fileTee, the store's) also gives the client its
// bytes back from that file: dst, the HTTP connection, sends them with
// sendfile from the page cache the tee just filled, instead of copying
// each chunk once more. A nil dst sends nothing: the blob is only kept.
func copyVerified(dst io.Writer, src io.Reader, want v1.Hash, tee io.Writer) error {
	const chunkSize, chunks = 512 << 10, 4
	free := make(chan []byte, chunks)
	for range chunks {
		free <- make([]byte, chunkSize)
	}
	toHash, hashed := make(chan []byte, chunks), make(chan []byte, chunks)
	h := sha256.New()
	go func() {
		defer close(hashed)
		for c := range toHash {
			h.Write(c)
			if tee != nil {
				tee.Write(c)
			}
			hashed <- c
		}
	}()
	// finish stops the hasher and waits for it, so h is safe to read and
	// no goroutine outlives the request.
	finish := func() {
		close(toHash)
		for range hashed {
		}
	}

	send := sender(dst, tee)
	var held []byte // read and sent to the hasher, not yet written
	for {
		buf := <-free
		n, err := fill(src, buf)
		if n > 0 {
			toHash <- buf[:n]
			// Only now that a later chunk exists may the held one go out:
			// the last chunk waits for the digest.
			if held != nil {
				done := <-hashed // the hasher, and the tee, are done with held
				if werr := send(held); werr != nil {
					finish()
					return werr
				}
				free <- done[:chunkSize]
			}
			held = buf[:n]
		} else {
			free <- buf
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			finish()
			return fmt.Errorf("%w: reading upstream blob %s: %w", ErrUnavailable, want, err)
		}
	}
	finish()
	if got := hex.EncodeToString(h.Sum(nil)); want.Algorithm != "sha256" || got != want.Hex {
		return fmt.Errorf("%w: %s hashes to sha256:%s", errBlobMismatch, want, got)
	}
	return send(held)
}

// A fileTee keeps what copyVerified tees to it in a file, and hands each
// chunk back from there once it has it.
type fileTee interface {
	io.Writer
	// next returns a reader of the next n bytes kept, read from the file
	// in order; false once the tee has stopped keeping (a full disk).
	next(n int) (io.Reader, bool)
}

// sender returns how copyVerified gives a chunk, whole, to dst: from the
// tee's file while it keeps one, from the chunk itself otherwise.
func sender(dst io.Writer, tee io.Writer) func(p []byte) error {
	if dst == nil {
		return func([]byte) error { return nil }
	}
	ft, _ := tee.(fileTee)
	return func(p []byte) error {
		if ft != nil {
			if r, ok := ft.next(len(p)); ok {
				n, err := io.Copy(dst, r)
				if err == nil && n != int64(len(p)) {
					// The file is shorter than what was written to it:
					// never end a body short without an error.
					err = fmt.Errorf("send a kept chunk: %d of its %d bytes: %w", n, len(p), io.ErrShortWrite)
				}
				return err
			}
			ft = nil // the tee stopped keeping: the rest comes from memory
		}
		_, err := dst.Write(p)
		return err
	}
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
