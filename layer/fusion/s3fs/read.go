package s3fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// maxSkip is how far forward a read may jump and still be served by the
// current stream, by discarding what lies between: less than what a new
// request costs on a fast link.
const maxSkip = 4 << 20

// keepChunks is how many consumed chunks a stream keeps. The kernel reads
// ahead asynchronously, so a few requests are in flight at once and may
// arrive out of order: a read just behind the stream is served from
// these instead of restarting the GET.
const keepChunks = 8

// bufPool recycles chunk buffers across all the files of a mount.
type bufPool struct {
	pool sync.Pool
}

func newBufPool(size int) *bufPool {
	p := &bufPool{}
	p.pool.New = func() any { return &chunkBuf{b: make([]byte, size), pool: p} }
	return p
}

// get returns a buffer held once, by the caller.
func (p *bufPool) get() *chunkBuf {
	c := p.pool.Get().(*chunkBuf)
	c.refs.Store(1)
	return c
}

// chunkBuf is a chunk's buffer, counted: the stream holds it while the
// chunk is queued, current or kept, and each answer sent without a copy
// holds it until go-fuse has written the answer to the kernel. It goes
// back to the pool when the last holder lets go, never while an answer
// may still be read from it.
type chunkBuf struct {
	b    []byte
	refs atomic.Int32
	pool *bufPool
}

func (c *chunkBuf) release() {
	if c.refs.Add(-1) == 0 {
		c.pool.pool.Put(c)
	}
}

// lentData answers a read with part of a chunk, without a copy; go-fuse
// calls Done once the answer is written.
type lentData struct {
	data []byte
	buf  *chunkBuf
}

func (l *lentData) Size() int                          { return len(l.data) }
func (l *lentData) Bytes([]byte) ([]byte, fuse.Status) { return l.data, fuse.OK }
func (l *lentData) Done()                              { l.buf.release() }

// Slices is what makes go-fuse keep the answer until it is written: with
// splice disabled, go-fuse calls Bytes and then Done at once, before the
// write to the kernel, for any answer without this method; the chunk
// went back to the pool and the next GET overwrote it under the write
// (the race detector caught it under git). With it, go-fuse writes the
// slices with writev and calls Done after.
func (l *lentData) Slices() ([][]byte, fuse.Status) { return [][]byte{l.data}, fuse.OK }

// go-fuse's unexported interface for answers written with writev
// (fuse.withSlice).
var _ interface {
	Slices() ([][]byte, fuse.Status)
} = (*lentData)(nil)

// reader serves reads of one open file from a ranged GET that runs ahead
// of the application. A read far from where the stream is (a seek) starts
// a new ranged GET from there.
type reader struct {
	fsys        *FS
	bucket, key string
	size        int64

	mu sync.Mutex
	st *stream
}

var (
	_ fs.FileReader   = (*reader)(nil)
	_ fs.FileReleaser = (*reader)(nil)
	_ fs.FileFsyncer  = (*reader)(nil)
)

func newReader(fsys *FS, bucket, key string, size int64) *reader {
	return &reader{fsys: fsys, bucket: bucket, key: key, size: size}
}

// chunk is one buffer of the stream, or the error that ended it.
type chunk struct {
	buf *chunkBuf
	n   int
	err error
}

// kept is a consumed chunk and where it lies in the object.
type kept struct {
	buf *chunkBuf
	off int64
	n   int
}

// stream reads the object from an offset to its end into a bounded queue
// of chunks, with ranged GETs run by its own goroutines (see fill).
type stream struct {
	cancel context.CancelFunc
	chunks chan chunk
	pool   *bufPool
	done   chan struct{}
	// starved has a token when the reader, having read seqAfter bytes
	// in order from start, found no chunk ready, and once when it got
	// that far: one more GET in flight helps.
	starved  chan struct{}
	start    int64
	seqAfter int64
	seqSeen  bool
	// rate is the last rate a GET of the stream read a chunk at, in
	// bytes per second; 0 before the first.
	rate atomic.Int64

	pos    int64  // offset of cur[0]
	cur    []byte // what is left of the chunk being consumed
	buf    *chunkBuf
	bufOff int64 // offset of buf.b[0]
	bufN   int
	err    error
	kept   []kept // oldest first
}

// next makes cur non-empty, or returns why it cannot.
func (st *stream) next(ctx context.Context) error {
	for len(st.cur) == 0 {
		if st.err != nil {
			return st.err
		}
		if st.buf != nil {
			st.kept = append(st.kept, kept{st.buf, st.bufOff, st.bufN})
			st.buf = nil
			if len(st.kept) > keepChunks {
				st.kept[0].buf.release()
				st.kept = st.kept[1:]
			}
		}
		if !st.seqSeen && st.pos-st.start >= st.seqAfter {
			st.seqSeen = true
			st.starve()
		}
		c, ok, err := st.take(ctx)
		switch {
		case err != nil:
			return err
		case !ok:
			st.err = io.EOF
		case c.err != nil:
			st.err = c.err
		default:
			st.buf, st.bufOff, st.bufN = c.buf, st.pos, c.n
			st.cur = c.buf.b[:c.n]
		}
	}
	return nil
}

// starve adds a token to st.starved once the reader has read on: the
// first one says the reads are sequential.
func (st *stream) starve() {
	if st.pos-st.start >= st.seqAfter {
		select {
		case st.starved <- struct{}{}:
		default:
		}
	}
}

// take receives the next chunk; finding none ready, it tells the fetcher
// that the reader waits (see fill).
func (st *stream) take(ctx context.Context) (chunk, bool, error) {
	select {
	case c, ok := <-st.chunks:
		return c, ok, nil
	default:
	}
	st.starve()
	select {
	case c, ok := <-st.chunks:
		return c, ok, nil
	case <-ctx.Done():
		return chunk{}, false, ctx.Err()
	}
}

// readBack copies [off, off+len(dest)) from what the stream has already
// passed, if it still has all of it.
func (st *stream) readBack(dest []byte, off int64) (int, bool) {
	end := off + int64(len(dest))
	if end > st.pos {
		end = st.pos
	}
	n := 0
	segs := st.kept
	if st.buf != nil {
		segs = append(segs[:len(segs):len(segs)], kept{st.buf, st.bufOff, st.bufN})
	}
	for _, k := range segs {
		at := off + int64(n)
		if at >= end {
			break
		}
		if at < k.off || at >= k.off+int64(k.n) {
			continue
		}
		n += copy(dest[n:end-off], k.buf.b[at-k.off:k.n])
	}
	return n, off+int64(n) == end
}

func (st *stream) close() {
	st.cancel()
	<-st.done
	for c := range st.chunks {
		if c.buf != nil {
			c.buf.release()
		}
	}
	for _, k := range st.kept {
		k.buf.release()
	}
	if st.buf != nil {
		st.buf.release()
	}
	st.kept, st.buf, st.cur = nil, nil, nil
}

func (r *reader) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off >= r.size {
		return fuse.ReadResultData(nil), 0
	}
	dest = dest[:min(int64(len(dest)), r.size-off)]
	n := 0
	if r.st != nil && off < r.st.pos {
		// Behind the stream: from the chunks it kept, and if the
		// request reaches past them, on from the stream.
		if m, ok := r.st.readBack(dest, off); ok {
			if m == len(dest) {
				return fuse.ReadResultData(dest), 0
			}
			n = m
		}
	}
	at := off + int64(n)
	if r.st != nil && (at < r.st.pos || at > r.st.pos+maxSkip) {
		r.st.close()
		r.st = nil
	}
	if r.st == nil {
		r.st = r.startStream(at)
	}
	st := r.st
	for st.pos < at {
		if err := st.next(ctx); err != nil {
			return nil, r.fail(err)
		}
		skip := min(int64(len(st.cur)), at-st.pos)
		st.cur = st.cur[skip:]
		st.pos += skip
	}
	if n == 0 {
		// The common case of a sequential reader: the kernel asks for
		// exactly what the current chunk holds (both are 1 MiB and
		// aligned when the stream started at 0). Answered from the
		// chunk, without a copy.
		if err := st.next(ctx); err != nil && !errors.Is(err, io.EOF) {
			return nil, r.fail(err)
		}
		if len(st.cur) >= len(dest) {
			data := st.cur[:len(dest)]
			st.cur = st.cur[len(dest):]
			st.pos += int64(len(dest))
			st.buf.refs.Add(1)
			return &lentData{data: data, buf: st.buf}, 0
		}
	}
	for n < len(dest) {
		err := st.next(ctx)
		if errors.Is(err, io.EOF) {
			break // the object shrank since it was listed
		}
		if err != nil {
			return nil, r.fail(err)
		}
		c := copy(dest[n:], st.cur)
		st.cur = st.cur[c:]
		st.pos += int64(c)
		n += c
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// fail drops the stream, so the next read retries with a new GET.
func (r *reader) fail(err error) syscall.Errno {
	r.st.close()
	r.st = nil
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	r.fsys.opts.Logger.Warn("read failed", "bucket", r.bucket, "key", r.key, "err", err)
	return errno(err)
}

func (r *reader) Release(context.Context) syscall.Errno {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st != nil {
		r.st.close()
		r.st = nil
	}
	return 0
}

// Fsync on a reader has nothing to make durable: editors and databases
// fsync what they only read, and must not fail.
func (r *reader) Fsync(context.Context, uint32) syscall.Errno { return 0 }
