package s3fs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// TestReaderOffsets drives a reader with the offsets the kernel sends,
// in order and out of it, against a real S3 server, without a mount.
func TestReaderOffsets(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "reads")
	const size = 6<<20 + 12345
	data := randomObject(t, srv, bucket, 7, size)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const mib = 1 << 20
	tests := []struct {
		name  string
		reads [][2]int64 // offset, length
	}{
		{"sequential 1 MiB", [][2]int64{{0, mib}, {mib, mib}, {2 * mib, mib}, {3 * mib, mib}, {4 * mib, mib}, {5 * mib, mib}, {6 * mib, mib}}},
		{"sequential 128 KiB", [][2]int64{{0, 128 << 10}, {128 << 10, 128 << 10}, {256 << 10, 128 << 10}}},
		{"swapped pair", [][2]int64{{0, mib}, {2 * mib, mib}, {mib, mib}, {3 * mib, mib}}},
		{"straddles the stream", [][2]int64{{0, mib}, {mib / 2, mib}, {3 * mib / 2, mib}}},
		{"back past what is kept", [][2]int64{{5 * mib, mib}, {0, 1000}}},
		{"far seek", [][2]int64{{0, 1000}, {6 * mib, 1000}, {100, 1000}}},
		{"tail and past the end", [][2]int64{{size - 10, mib}, {size, 10}, {size + 5, 10}}},
	}
	// The defaults fetch this object with one GET; 1 MiB parts, three
	// at a time, go parallel from the third MiB read in order.
	for _, o := range []Options{{}, {ReadPart: mib, ReadStreams: 3}} {
		f := &FS{client: srv.Client, core: minio.Core{Client: srv.Client}, base: ctx, opts: o.withDefaults()}
		f.pool = newBufPool(f.opts.ChunkSize)
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s, parts of %d MiB", tt.name, f.opts.ReadPart/mib), func(t *testing.T) {
				readAll(t, ctx, newReader(f, bucket, "obj", size), data, tt.reads)
			})
		}
	}
}

// readAll makes the reads and checks what they return against data.
func readAll(t *testing.T, ctx context.Context, rd *reader, data []byte, reads [][2]int64) {
	t.Helper()
	size := int64(len(data))
	defer rd.Release(ctx)
	for _, rq := range reads {
		off, n := rq[0], rq[1]
		res, eno := rd.Read(ctx, make([]byte, n), off)
		if eno != 0 {
			t.Fatalf("Read(%d, %d): %v", off, n, eno)
		}
		got, _ := res.Bytes(nil)
		want := data[min(off, size):min(off+n, size)]
		if !bytes.Equal(got, want) {
			t.Fatalf("Read(%d, %d): %d bytes, want %d, content differs: %v", off, n, len(got), len(want), !bytes.Equal(got[:min(len(got), len(want))], want[:min(len(got), len(want))]))
		}
		res.Done()
	}
}

// TestLentAnswers: answers sent without a copy keep their bytes until
// go-fuse says it wrote them (Done), however far the stream has moved on
// and whatever buffers it recycled meanwhile.
func TestLentAnswers(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "lent")
	const mib, size = 1 << 20, 24 << 20
	data := randomObject(t, srv, bucket, 8, size)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &FS{client: srv.Client, core: minio.Core{Client: srv.Client}, base: ctx, opts: Options{}.withDefaults()}
	f.pool = newBufPool(f.opts.ChunkSize)

	rd := newReader(f, bucket, "obj", size)
	var held []fuse.ReadResult
	for off := int64(0); off < size; off += mib {
		res, eno := rd.Read(ctx, make([]byte, mib), off)
		if eno != 0 {
			t.Fatalf("Read(%d): %v", off, eno)
		}
		held = append(held, res) // not written to the kernel yet
	}
	rd.Release(ctx)
	for i, res := range held {
		got, _ := res.Bytes(nil)
		if !bytes.Equal(got, data[i*mib:(i+1)*mib]) {
			t.Errorf("the answer for MiB %d changed before go-fuse wrote it", i)
		}
		res.Done()
	}
}

// TestReaderParallel: where one connection is slow (a relay holds each to
// 8 MiB/s), a sequential reader runs several ranged GETs at once, and
// still returns the object's bytes in order.
func TestReaderParallel(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "parallel")
	const mib, size = 1 << 20, 24 << 20
	data := randomObject(t, srv, bucket, 9, size)
	relay := srv.Throttle(t, 8*mib)
	client := relay.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &FS{client: client, core: minio.Core{Client: client}, base: ctx, opts: Options{ReadPart: 2 * mib, ReadStreams: 4}.withDefaults()}
	f.pool = newBufPool(f.opts.ChunkSize)
	var reads [][2]int64
	for off := int64(0); off < size; off += mib {
		reads = append(reads, [2]int64{off, mib})
	}
	readAll(t, ctx, newReader(f, bucket, "obj", size), data, reads)
	// The relay counts a connection until it has seen the server's end,
	// which on a loaded machine can come after the client, which had the
	// last byte, has dialled its next GET: one GET at a time shows 2 at
	// most, and ReadStreams at a time ReadStreams+1 (seen at load 2).
	if got, most := relay.PeakConns(), f.opts.ReadStreams+1; got < 3 || got > most {
		t.Errorf("%d connections at most at once, want 3 to %d", got, most)
	} else {
		t.Logf("%d connections at most at once", got)
	}
}

// randomObject lays out bucket/obj: size random bytes from seed.
func randomObject(t *testing.T, srv *s3test.Server, bucket string, seed uint64, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	srv.WriteObject(t, bucket, "obj", data)
	return data
}
