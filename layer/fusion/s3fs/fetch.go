package s3fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// A stream fetches the object in parts of ReadPart bytes, each with its
// own ranged GET. The parts go one after the other at first: a small
// file, or a seek that reads a little, costs one request, and where one
// connection is faster than FUSE (loopback) one GET at a time is best.
// Once the reader has read two chunks in order, each time it finds the
// queue empty one more part is fetched at once, on its own connection,
// up to ReadStreams: real S3 serves 50 to 100 MiB/s a connection, and a
// file read with one GET at a time is capped there.
//
// Memory: the parts in flight (at most ReadStreams × ReadPart), plus the
// queue (ReadAhead chunks) and the chunks kept behind the reader
// (keepChunks).

func (r *reader) startStream(off int64) *stream {
	ctx, cancel := context.WithCancel(r.fsys.base)
	o := r.fsys.opts
	st := &stream{
		cancel:   cancel,
		chunks:   make(chan chunk, o.ReadAhead),
		pool:     r.fsys.pool,
		done:     make(chan struct{}),
		starved:  make(chan struct{}, 1),
		start:    off,
		seqAfter: 2 * int64(o.ChunkSize),
		pos:      off,
	}
	go st.fill(ctx, r.fsys, r.bucket, r.key, off, r.size)
	return st
}

// fill launches the parts' GETs in order, at most ReadStreams of them
// not forwarded at once, and forwards their chunks to st.chunks in order.
func (st *stream) fill(ctx context.Context, fsys *FS, bucket, key string, off, size int64) {
	var wg sync.WaitGroup
	defer close(st.done)
	defer wg.Wait()
	defer close(st.chunks)
	send := func(c chunk) bool {
		select {
		case st.chunks <- c:
			return true
		case <-ctx.Done():
			c.release()
			return false
		}
	}
	part := int64(fsys.opts.ReadPart)
	slots := make(chan struct{}, fsys.opts.ReadStreams)
	parts := make(chan chan chunk, fsys.opts.ReadStreams)
	// forwarded has a token when a part was forwarded whole: another
	// takes its place. A token in st.starved adds one.
	forwarded := make(chan struct{}, 1)
	wg.Go(func() {
		defer close(parts)
		for at := off; at < size; {
			if at > off && !st.more(ctx, forwarded, len(slots)) {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			end := min(at+part, size)
			// Room for the whole part: a GET never waits for the
			// reader, so its connection is never held idle.
			ch := make(chan chunk, (end-at+int64(fsys.opts.ChunkSize)-1)/int64(fsys.opts.ChunkSize)+1)
			parts <- ch
			start := at
			wg.Go(func() { st.fetch(ctx, fsys, bucket, key, start, end, ch) })
			at = end
		}
	})
	defer func() {
		// The launcher stops (it may wait for a slot), and parts
		// fetched and not forwarded go back to the pool.
		st.cancel()
		for ch := range parts {
			for c := range ch {
				c.release()
			}
		}
	}()
	for ch := range parts {
		for c := range ch {
			if !send(c) {
				return
			}
			if c.err != nil {
				return
			}
		}
		<-slots
		select {
		case forwarded <- struct{}{}:
		default: // the launcher has yet to take the last one
		}
	}
	send(chunk{err: io.EOF})
}

// fastLink is the rate of one connection above which more GETs at once
// cost more (CPU, memory) than they give: loopback, or a LAN. Real S3
// serves a connection 50 to 100 MiB/s.
const fastLink = 400 << 20

// more waits until another part may be launched: when one was forwarded
// whole (it takes its place), or the reader starved (one more), unless
// two are in flight and one connection is fast. It returns false to be
// asked again, and on ctx's end, which the caller sees next.
func (st *stream) more(ctx context.Context, forwarded <-chan struct{}, inFlight int) bool {
	select {
	case <-forwarded:
		return true
	case <-st.starved:
		rate := st.rate.Load()
		return inFlight < 2 || rate == 0 || rate < fastLink
	case <-ctx.Done():
		return true
	}
}

func (c chunk) release() {
	if c.buf != nil {
		c.buf.release()
	}
}

// fetch GETs [at, end) into ch, a chunk at a time, and closes ch. A part
// past the end of an object that shrank since it was listed ends the
// stream (io.EOF) instead of failing it.
func (st *stream) fetch(ctx context.Context, fsys *FS, bucket, key string, at, end int64, ch chan<- chunk) {
	defer close(ch)
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(at, end-1); err != nil {
		ch <- chunk{err: err}
		return
	}
	body, _, _, err := fsys.core.GetObject(ctx, bucket, key, opts)
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			err = io.EOF
		} else {
			err = fmt.Errorf("get %s/%s [%d, %d): %w", bucket, key, at, end, err)
		}
		ch <- chunk{err: err}
		return
	}
	defer body.Close()
	last := time.Now()
	for at < end {
		buf := st.pool.get()
		n, err := io.ReadFull(body, buf.b[:min(int64(len(buf.b)), end-at)])
		at += int64(n)
		// A connection's rate, from the first byte on: the chunk
		// waited for nothing else (ch has room for the whole part).
		if now := time.Now(); n == len(buf.b) {
			st.rate.Store(int64(float64(n) / max(now.Sub(last).Seconds(), 1e-6)))
			last = now
		}
		if n > 0 {
			ch <- chunk{buf: buf, n: n}
		} else {
			buf.release()
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			if at < end {
				ch <- chunk{err: io.EOF} // the object shrank
			}
			return
		case err != nil:
			ch <- chunk{err: fmt.Errorf("read %s/%s: %w", bucket, key, err)}
			return
		}
	}
}
