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
	// emptyPut says the empty object is in S3 already (see Flush).
	emptyPut bool
	// mustTrunc is set for an existing object until the kernel truncates
	// it: writing before that would be an overwrite in place.
	mustTrunc bool
}

// truncated says the object was emptied under the writer.
func (w *writer) truncated() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mustTrunc = false
	w.emptyPut = w.pw == nil
}

// truncate takes a setattr of the size on the open file: to 0 before any
// write (the O_TRUNC of the open), or to what is written (a no-op).
func (w *writer) truncate(size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case size == w.off:
		if size == 0 {
			w.mustTrunc = false
		}
		return true
	default:
		return false
	}
}

var (
	_ fs.FileWriter   = (*writer)(nil)
	_ fs.FileFlusher  = (*writer)(nil)
	_ fs.FileReleaser = (*writer)(nil)
	_ fs.FileReader   = (*writer)(nil)
)

func (w *writer) written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.off
}

// start begins the upload on the first write; a file closed without any
// write becomes an empty object with a plain PUT.
func (w *writer) start() {
	pr, pw := io.Pipe()
	w.pw, w.done = pw, make(chan struct{})
	fsys := w.file.fsys
	go func() {
		defer close(w.done)
		// Size -1: minio-go cuts the stream into PartSize parts, two in
		// flight, and completes the multipart upload at EOF.
		info, err := fsys.client.PutObject(fsys.base, w.bucket, w.key, pr, -1, minio.PutObjectOptions{
			PartSize:              fsys.opts.PartSize,
			NumThreads:            2,
			ConcurrentStreamParts: true,
		})
		pr.CloseWithError(errOr(err, io.ErrClosedPipe))
		w.info, w.upErr = info, err
	}()
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
		if w.emptyPut || w.mustTrunc {
			return 0 // nothing to change
		}
		return w.putEmpty(ctx)
	}
	w.flushed = true
	w.pw.Close()
	// Not abandoned on an interrupt: close(2) must report whether the
	// object is whole, and the upload runs under the mount's context.
	<-w.done
	if w.upErr != nil {
		w.result = w.fail(fmt.Errorf("complete upload of %d bytes: %w", w.off, w.upErr))
	}
	w.finish(w.info.LastModified)
	return w.result
}

// putEmpty writes the empty object; the node stays the writer's.
func (w *writer) putEmpty(ctx context.Context) syscall.Errno {
	info, err := w.file.fsys.client.PutObject(ctx, w.bucket, w.key, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
	if err != nil {
		return w.fail(err)
	}
	w.emptyPut = true
	w.file.mu.Lock()
	w.file.mtime = info.LastModified
	w.file.mu.Unlock()
	w.file.invalidateParent()
	return 0
}

// finish hands the node back to listings, with the size written.
func (w *writer) finish(mtime time.Time) {
	if mtime.IsZero() {
		mtime = time.Now()
	}
	f := w.file
	f.mu.Lock()
	if f.writer == w {
		f.writer = nil
		if w.result == 0 && (w.pw != nil || w.emptyPut) {
			f.size, f.mtime = w.off, mtime
		}
	}
	f.mu.Unlock()
	f.invalidateParent()
}

// Release aborts an upload that was never flushed (half an object must
// not appear), and puts the empty object of a file that got no flush at
// all.
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
	case !w.emptyPut && !w.mustTrunc:
		// The kernel does not wait for a release: the mount's context.
		w.result = w.putEmpty(w.file.fsys.base)
	}
	w.finish(time.Time{})
	return 0
}
