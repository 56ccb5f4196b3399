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

// reader serves reads of one open file from a ranged GET that runs ahead
// of the application. A read that is not where the stream is (a seek)
// starts a new ranged GET from there.
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

// stream is one ranged GET from an offset to the end of the object, read
// into a bounded queue of chunks by its own goroutine.
type stream struct {
	cancel context.CancelFunc
	chunks chan chunk
	pool   *sync.Pool
	done   chan struct{}

	pos int64  // offset of cur[0]
	cur []byte // what is left of the chunk being consumed
	buf *[]byte
	err error
}

func (r *reader) startStream(off int64) *stream {
	ctx, cancel := context.WithCancel(r.fsys.base)
	size := r.fsys.opts.ChunkSize
	st := &stream{
		cancel: cancel,
		chunks: make(chan chunk, r.fsys.opts.ReadAhead),
		pool:   &sync.Pool{New: func() any { b := make([]byte, size); return &b }},
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
		buf := st.pool.Get().(*[]byte)
		n, err := io.ReadFull(body, *buf)
		if n > 0 && !send(chunk{buf: buf, n: n}) {
			return
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
			st.pool.Put(st.buf)
			st.buf = nil
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
			st.buf, st.cur = c.buf, (*c.buf)[:c.n]
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (st *stream) close() {
	st.cancel()
	<-st.done
}

func (r *reader) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off >= r.size {
		return fuse.ReadResultData(nil), 0
	}
	if r.st != nil && (off < r.st.pos || off > r.st.pos+maxSkip) {
		r.st.close()
		r.st = nil
	}
	if r.st == nil {
		r.st = r.startStream(off)
	}
	st := r.st
	for st.pos < off {
		if err := st.next(ctx); err != nil {
			return nil, r.fail(err)
		}
		skip := min(int64(len(st.cur)), off-st.pos)
		st.cur = st.cur[skip:]
		st.pos += skip
	}
	n := 0
	for n < len(dest) && st.pos < r.size {
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
