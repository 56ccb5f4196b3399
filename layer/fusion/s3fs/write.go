package s3fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"
)

// writer streams sequential writes into a multipart upload, which
// completes when the file is closed: close(2) returns its outcome.
//
// fsync completes the upload there and then, so that the object in S3
// holds everything written so far, and the writer goes on: a later write
// starts a new upload that sends the object's bytes again first (a GET
// of that very version), then the new ones. S3 has no append; this keeps
// every fsync a consistent, visible object, at the cost of re-sending
// what precedes a write that follows an fsync. Opening an existing
// object with O_APPEND starts in that state.
type writer struct {
	file        *fileNode
	bucket, key string

	mu      sync.Mutex
	off     int64
	pw      *io.PipeWriter
	done    chan struct{}
	info    minio.UploadInfo
	upErr   error
	flushed bool
	result  syscall.Errno
	// stored says S3 holds the object as written so far (off bytes): an
	// fsync completed it, an empty one was put (see Flush), or an
	// O_APPEND open found it. etag names that version when known.
	stored bool
	etag   string
	// wrote says a write came through this writer.
	wrote bool
	// mustTrunc is set for an existing object until the kernel truncates
	// it: writing before that would be an overwrite in place.
	mustTrunc bool
}

// truncated says the object was emptied under the writer.
func (w *writer) truncated() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mustTrunc = false
	if w.pw == nil {
		w.off, w.stored, w.etag = 0, true, ""
	}
}

// truncate takes a setattr of the size on the open file: to 0 before any
// write (the O_TRUNC of the open), or to what is written (a no-op).
func (w *writer) truncate(size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size != w.off {
		return false
	}
	if size == 0 {
		w.mustTrunc = false
	}
	return true
}

var (
	_ fs.FileWriter   = (*writer)(nil)
	_ fs.FileFlusher  = (*writer)(nil)
	_ fs.FileReleaser = (*writer)(nil)
	_ fs.FileReader   = (*writer)(nil)
	_ fs.FileFsyncer  = (*writer)(nil)
)

func (w *writer) written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.off
}

// start begins an upload at the first write, or at the first write after
// an fsync, when the object's first off bytes are sent again before the
// new ones. A file closed without any write becomes an empty object with
// a plain PUT.
func (w *writer) start() {
	pr, pw := io.Pipe()
	w.pw, w.done = pw, make(chan struct{})
	fsys := w.file.fsys
	prefix, etag := int64(0), w.etag
	if w.stored {
		prefix = w.off
	}
	go func() {
		defer close(w.done)
		var body io.Reader = pr
		if prefix > 0 {
			old, err := w.prefix(fsys, prefix, etag)
			if err != nil {
				pr.CloseWithError(err)
				w.upErr = err
				return
			}
			defer old.Close()
			body = io.MultiReader(old, pr)
		}
		// Size -1: minio-go cuts the stream into PartSize parts, that
		// many in flight, and completes the multipart upload at EOF.
		info, err := fsys.client.PutObject(fsys.base, w.bucket, w.key, body, -1, minio.PutObjectOptions{
			PartSize:              fsys.opts.PartSize,
			NumThreads:            uint(fsys.opts.UploadParts),
			ConcurrentStreamParts: true,
		})
		pr.CloseWithError(errOr(err, io.ErrClosedPipe))
		w.info, w.upErr = info, err
	}()
}

// prefix opens the first n bytes of the object being continued. With the
// ETag of the version the writer completed, another writer's object in
// between fails the GET (412) instead of being spliced in.
func (w *writer) prefix(fsys *FS, n int64, etag string) (io.ReadCloser, error) {
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(0, n-1); err != nil {
		return nil, err
	}
	if etag != "" {
		if err := opts.SetMatchETag(etag); err != nil {
			return nil, err
		}
	}
	body, info, _, err := fsys.core.GetObject(fsys.base, w.bucket, w.key, opts)
	if err != nil {
		return nil, fmt.Errorf("get the %d bytes already in %s/%s: %w", n, w.bucket, w.key, err)
	}
	if info.Size != n {
		body.Close()
		return nil, fmt.Errorf("%s/%s changed under the writer: %d bytes, want %d", w.bucket, w.key, info.Size, n)
	}
	return body, nil
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

func (w *writer) Write(_ context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flushed {
		return 0, syscall.EBADF
	}
	if off != w.off || w.mustTrunc {
		// Not at the end of what is written: S3 objects cannot be
		// patched.
		return 0, syscall.ENOTSUP
	}
	if w.pw == nil {
		w.start()
	}
	w.wrote = true
	n, err := w.pw.Write(data)
	w.off += int64(n)
	if err != nil {
		<-w.done
		return uint32(n), w.fail(err)
	}
	return uint32(n), 0
}

// fail logs why the upload failed and returns the errno for it. A write
// gets the upload's error through the pipe; Flush wraps it with what it
// completed.
func (w *writer) fail(err error) syscall.Errno {
	w.file.fsys.opts.Logger.Warn("upload failed", "bucket", w.bucket, "key", w.key, "err", err)
	return errno(err)
}

func (w *writer) Read(context.Context, []byte, int64) (fuse.ReadResult, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// Flush completes the upload. The kernel flushes at every close(2) of a
// descriptor, dups included: a shell's `> file` opens, dup2s and closes
// the original before any write. So a flush before the first write puts
// the empty object (touch must leave one when close returns) and keeps the
// file open for writing; the first flush after a write completes the
// object, and close(2) returns its outcome. Writes through a descriptor
// still open after that fail with EBADF.
func (w *writer) Flush(ctx context.Context) syscall.Errno {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flushed {
		return w.result
	}
	if w.pw == nil {
		switch {
		case w.stored && w.wrote:
			// fsync completed the object and nothing came after.
			w.flushed = true
			w.finish(w.info.LastModified)
			return 0
		case w.stored || w.mustTrunc:
			return 0 // nothing to change
		}
		return w.putEmpty(ctx)
	}
	w.flushed = true
	w.complete()
	w.finish(w.info.LastModified)
	return w.result
}

// Fsync makes what was written durable: it completes the upload, so the
// object in S3 is everything written so far, and leaves the file open
// for more writes (see writer). Before any write it puts the empty
// object, as a close would.
func (w *writer) Fsync(ctx context.Context, _ uint32) syscall.Errno {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.flushed:
		return w.result
	case w.pw != nil:
		if eno := w.complete(); eno != 0 {
			w.flushed = true
			w.finish(time.Time{})
			return eno
		}
		w.pw, w.done = nil, nil
		w.stored, w.etag = true, w.info.ETag
		w.file.mu.Lock()
		w.file.mtime = w.info.LastModified
		w.file.mu.Unlock()
		w.file.invalidateParent()
		return 0
	case w.stored || w.mustTrunc:
		return 0
	}
	return w.putEmpty(ctx)
}

// complete ends the stream and waits for the upload's outcome. It is not
// abandoned on an interrupt: close(2) and fsync(2) must report whether
// the object is whole, and the upload runs under the mount's context.
func (w *writer) complete() syscall.Errno {
	w.pw.Close()
	<-w.done
	if w.upErr != nil {
		w.result = w.fail(fmt.Errorf("complete upload of %d bytes: %w", w.off, w.upErr))
	}
	return w.result
}

// putEmpty writes the empty object; the node stays the writer's.
func (w *writer) putEmpty(ctx context.Context) syscall.Errno {
	info, err := w.file.fsys.client.PutObject(ctx, w.bucket, w.key, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
	if err != nil {
		return w.fail(err)
	}
	w.stored, w.etag = true, info.ETag
	w.file.mu.Lock()
	w.file.mtime = info.LastModified
	w.file.mu.Unlock()
	w.file.invalidateParent()
	return 0
}

// finish hands the node back to listings, with the size written; a zero
// mtime keeps the node's.
func (w *writer) finish(mtime time.Time) {
	f := w.file
	f.mu.Lock()
	if f.writer == w {
		f.writer = nil
		if w.result == 0 && (w.pw != nil || w.stored) {
			f.size = w.off
			if !mtime.IsZero() {
				f.mtime = mtime
			}
		}
	}
	f.mu.Unlock()
	f.invalidateParent()
}

// Release aborts an upload that was never flushed (half an object must
// not appear: S3 keeps the last fsync's object, if any), and puts the
// empty object of a file that got no flush at all.
func (w *writer) Release(context.Context) syscall.Errno {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flushed {
		return 0
	}
	w.flushed = true
	switch {
	case w.pw != nil:
		w.pw.CloseWithError(errors.New("file released before close"))
		<-w.done
		w.result = syscall.EIO
	case !w.stored && !w.mustTrunc:
		// The kernel does not wait for a release: the mount's context.
		w.result = w.putEmpty(w.file.fsys.base)
	}
	w.finish(time.Time{})
	return 0
}
