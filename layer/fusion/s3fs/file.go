package s3fs

import (
	"bytes"
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"
)

// timeAttrs are the setattr fields that are accepted and not stored: S3
// sets an object's time when it is written.
const timeAttrs = fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_CTIME |
	// Clearing set-user-ID bits that no object has.
	fuse.FATTR_KILL_SUIDGID

// fileNode is one object.
type fileNode struct {
	fs.Inode
	fsys *FS

	mu     sync.Mutex
	bucket string
	key    string
	size   int64
	mtime  time.Time
	// writer is the open upload, nil when none.
	writer *writer
	// parent is the directory whose listing a finished upload changes.
	parent *dirNode
}

var (
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeStatfser  = (*fileNode)(nil)
)

func (f *fileNode) isWriting() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writer != nil
}

// update takes what a listing or HEAD says, unless an upload owns the size.
func (f *fileNode) update(size int64, mtime time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writer == nil {
		f.size, f.mtime = size, mtime
	}
}

func (f *fileNode) moved(bucket, key string, parent *dirNode) {
	f.mu.Lock()
	f.bucket, f.key, f.parent = bucket, key, parent
	f.mu.Unlock()
}

func (f *fileNode) attr(a *fuse.Attr) {
	// Lock order: a writer's lock, then its file's (Flush); never both
	// the other way round.
	f.mu.Lock()
	size, mtime, w := f.size, f.mtime, f.writer
	f.mu.Unlock()
	if w != nil {
		size = w.written()
	}
	f.fsys.fileAttr(a, size, mtime)
}

func (f *fileNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	return 0
}

func (f *fileNode) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// Setattr accepts times (ignored), and a size only where it needs no
// rewrite in place: the current size, or 0, which replaces the object with
// an empty one (truncate(1), and open with O_TRUNC on kernels that send it
// as a setattr).
func (f *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if in.Valid&^(timeAttrs|fuse.FATTR_SIZE|fuse.FATTR_FH|fuse.FATTR_LOCKOWNER|fuse.FATTR_MODE) != 0 ||
		!sameMode(in, fileMode) {
		return syscall.ENOTSUP
	}
	if in.Valid&fuse.FATTR_SIZE != 0 {
		f.mu.Lock()
		size, bucket, key := f.size, f.bucket, f.key
		f.mu.Unlock()
		// Through an open writer (ftruncate): the writer replaces the
		// object anyway.
		w, _ := fh.(*writer)
		switch {
		case w != nil:
			if !w.truncate(int64(in.Size)) {
				return syscall.ENOTSUP
			}
		case int64(in.Size) == size:
		case in.Size == 0:
			// truncate(2), or the truncation that follows an open with
			// O_TRUNC, which the kernel sends without the handle: the
			// object is emptied now, as POSIX says, and the writers
			// open on it may write.
			info, err := f.fsys.client.PutObject(ctx, bucket, key, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
			if err != nil {
				return errno(err)
			}
			f.mu.Lock()
			w := f.writer
			if w == nil {
				f.size, f.mtime = 0, info.LastModified
			}
			f.mu.Unlock()
			if w != nil {
				w.truncated()
			}
			f.invalidateParent()
		default:
			return syscall.ENOTSUP
		}
	}
	f.attr(&out.Attr)
	return 0
}

func (f *fileNode) invalidateParent() {
	f.mu.Lock()
	p := f.parent
	f.mu.Unlock()
	if p != nil {
		p.invalidate()
		return
	}
	if _, parent := f.Parent(); parent != nil {
		if d, ok := parent.Operations().(*dirNode); ok {
			d.invalidate()
		}
	}
}

// Open gives a reader, or a writer that replaces the object. The kernel
// does not pass O_TRUNC (go-fuse does not ask for atomic O_TRUNC): it
// truncates with a setattr right after the open. So a writer on an
// existing object waits for that truncation, and a write without it (an
// overwrite in place, dd conv=notrunc) is refused; so is O_RDWR, which
// would need a read-modify-write of the whole object. O_APPEND continues
// the object as a write after an fsync does (see writer).
func (f *fileNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.writer != nil {
			return nil, 0, syscall.EBUSY
		}
		return newReader(f.fsys, f.bucket, f.key, f.size), 0, 0
	case syscall.O_WRONLY:
		appending := flags&syscall.O_APPEND != 0 && flags&syscall.O_TRUNC == 0
		w := f.startWrite(flags&syscall.O_TRUNC == 0, appending)
		if w == nil {
			return nil, 0, syscall.EBUSY
		}
		return w, fuse.FOPEN_DIRECT_IO, 0
	default:
		return nil, 0, syscall.ENOTSUP
	}
}

// startWrite makes f the target of a new upload, or returns nil while
// another one is open: the check and the claim are one step, so two opens
// at once cannot both write. untruncated says the kernel has yet to
// truncate an existing object before the writes may start; appending
// says the writes continue the object instead.
func (f *fileNode) startWrite(untruncated, appending bool) *writer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writer != nil {
		return nil
	}
	w := &writer{file: f, bucket: f.bucket, key: f.key, mustTrunc: untruncated && f.size > 0}
	if appending {
		w.off, w.stored, w.mustTrunc = f.size, true, false
	}
	f.writer = w
	return w
}
