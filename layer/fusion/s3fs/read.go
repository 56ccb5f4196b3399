package s3fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"
)

// maxSkip is how far forward a read may jump and still be served by the
// current stream, by discarding what lies between: less than what a new
// request costs on a fast link.
const maxSkip = 4 << 20

// keepChunks is how many consumed chunks a stream keeps. The kernel reads
// ahead asynchronously, so a few requests are in flight at once and may
// arrive out of order: a read just behind the stream is served from
// these instead of restarting the GET. They also keep the buffers of
// answers sent without a copy alive until the kernel has them.
const keepChunks = 8

// bufPool recycles chunk buffers across all the files of a mount.
type bufPool struct {
	size int
	pool sync.Pool
}

func newBufPool(size int) *bufPool {
	p := &bufPool{size: size}
	p.pool.New = func() any { b := make([]byte, size); return &b }
	return p
}

func (p *bufPool) get() *[]byte  { return p.pool.Get().(*[]byte) }
func (p *bufPool) put(b *[]byte) { p.pool.Put(b) }

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
)

func newReader(fsys *FS, bucket, key string, size int64) *reader {
	return &reader{fsys: fsys, bucket: bucket, key: key, size: size}
}

// chunk is one buffer of the stream, or the error that ended it.
type chunk struct {
	buf *[]byte
	n   int
	err error
}

// kept is a consumed chunk and where it lies in the object.
type kept struct {
	buf *[]byte
	off int64
	n   int
}

// stream is one ranged GET from an offset to the end of the object, read
// into a bounded queue of chunks by its own goroutine.
type stream struct {
	cancel context.CancelFunc
	chunks chan chunk
	pool   *bufPool
	done   chan struct{}

	pos    int64  // offset of cur[0]
	cur    []byte // what is left of the chunk being consumed
	buf    *[]byte
	bufOff int64 // offset of (*buf)[0]
	bufN   int
	err    error
	kept   []kept // oldest first
}

func (r *reader) startStream(off int64) *stream {
	ctx, cancel := context.WithCancel(r.fsys.base)
	st := &stream{
		cancel: cancel,
		chunks: make(chan chunk, r.fsys.opts.ReadAhead),
		pool:   r.fsys.pool,
		done:   make(chan struct{}),
		pos:    off,
	}
	go st.fill(ctx, r.fsys, r.bucket, r.key, off)
	return st
}

func (st *stream) fill(ctx context.Context, fsys *FS, bucket, key string, off int64) {
	defer close(st.done)
	defer close(st.chunks)
	send := func(c chunk) bool {
		select {
		case st.chunks <- c:
			return true
		case <-ctx.Done():
			if c.buf != nil {
				st.pool.put(c.buf)
			}
			return false
		}
	}
	opts := minio.GetObjectOptions{}
	if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			send(chunk{err: err})
			return
		}
	}
	body, _, _, err := fsys.core.GetObject(ctx, bucket, key, opts)
	if err != nil {
		send(chunk{err: fmt.Errorf("get %s/%s from %d: %w", bucket, key, off, err)})
		return
	}
	defer body.Close()
	for {
		buf := st.pool.get()
		n, err := io.ReadFull(body, *buf)
		if n > 0 {
			if !send(chunk{buf: buf, n: n}) {
				return
			}
		} else {
			st.pool.put(buf)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			send(chunk{err: io.EOF})
			return
		}
		if err != nil {
			send(chunk{err: fmt.Errorf("read %s/%s: %w", bucket, key, err)})
			return
		}
	}
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
				st.pool.put(st.kept[0].buf)
				st.kept = st.kept[1:]
			}
		}
		select {
		case c, ok := <-st.chunks:
			if !ok {
				st.err = io.EOF
				continue
			}
			if c.err != nil {
				st.err = c.err
				continue
			}
			st.buf, st.bufOff, st.bufN = c.buf, st.pos, c.n
			st.cur = (*c.buf)[:c.n]
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
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
		n += copy(dest[n:end-off], (*k.buf)[at-k.off:k.n])
	}
	return n, off+int64(n) == end
}

func (st *stream) close() {
	st.cancel()
	<-st.done
	for c := range st.chunks {
		if c.buf != nil {
			st.pool.put(c.buf)
		}
	}
	// The kept buffers may still be in answers being written: left to
	// the garbage collector rather than reused.
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
			return fuse.ReadResultData(data), 0
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
