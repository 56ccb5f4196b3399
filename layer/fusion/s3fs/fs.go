// Package s3fs is a FUSE file system over S3 buckets, served with go-fuse.
//
// The root of the mount holds one directory per bucket. Inside a bucket, a
// directory is a key prefix ending in "/": it lists with ListObjectsV2 and
// a "/" delimiter, and exists while some key starts with it (or while its
// marker object "prefix/", which Mkdir creates, does). A file is an object.
//
// What S3 cannot do is refused with an errno rather than emulated badly:
// writes anywhere but at the end of a file being written, opening an
// existing object for writing without O_TRUNC, renaming a directory,
// links, special files and attribute changes other than times (ENOTSUP);
// changes to the root, which lists the configured buckets (EPERM).
package s3fs

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/singleflight"
)

// Options tune a file system; the zero value of each field means its default.
type Options struct {
	// AttrTTL is how long the kernel keeps attributes and names, and how
	// long a directory's listing answers lookups without asking S3.
	AttrTTL time.Duration
	// DirTTL is how long a listing is reused for readdir and lookups.
	DirTTL time.Duration
	// ChunkSize is the size of one read-ahead buffer (default 1 MiB).
	ChunkSize int
	// ReadAhead is how many chunks a sequential reader fetches ahead of
	// the application (default 8).
	ReadAhead int
	// ReadPart is the size of one ranged GET (default 8 MiB, a whole
	// number of chunks), and ReadStreams how many a sequential reader
	// runs at once (default 8): memory per such reader is their product.
	ReadPart    int
	ReadStreams int
	// PartSize is the multipart upload part size (default 16 MiB).
	PartSize uint64
	// UploadParts is how many parts of one upload are sent at once
	// (default 4); memory per open writer is PartSize times one more.
	UploadParts int
	// Logger receives what cannot be returned as an errno.
	Logger *slog.Logger
	// Debug logs every FUSE request (go-fuse's trace) on the standard
	// logger.
	Debug bool
	// UID and GID own every file and directory. The mount enforces mode
	// bits (default_permissions), so they must be the user that writes.
	UID, GID uint32
}

func (o Options) withDefaults() Options {
	if o.AttrTTL == 0 {
		o.AttrTTL = 5 * time.Second
	}
	if o.DirTTL == 0 {
		o.DirTTL = 5 * time.Second
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = 1 << 20
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = 8
	}
	if o.ReadPart == 0 {
		o.ReadPart = 8 << 20
	}
	// Whole chunks: a part's last chunk would be short, and answered
	// with a copy.
	o.ReadPart = max(1, (o.ReadPart+o.ChunkSize-1)/o.ChunkSize) * o.ChunkSize
	if o.ReadStreams == 0 {
		o.ReadStreams = 8
	}
	if o.PartSize == 0 {
		o.PartSize = 16 << 20
	}
	if o.UploadParts == 0 {
		o.UploadParts = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// FS is the state shared by every node of one mount.
type FS struct {
	client *minio.Client
	core   minio.Core
	opts   Options
	// base bounds the work that outlives one FUSE request: read-ahead
	// streams and uploads. It ends when the mount is torn down.
	base    context.Context
	mounted time.Time
	pool    *bufPool
	// lists shares one directory listing among the lookups that need it
	// at once.
	lists singleflight.Group
}

// NewRoot returns the root node of a file system that shows buckets.
// ctx bounds the background transfers (read-ahead, uploads).
func NewRoot(ctx context.Context, client *minio.Client, buckets []string, opts Options) fs.InodeEmbedder {
	f := &FS{
		client:  client,
		core:    minio.Core{Client: client},
		opts:    opts.withDefaults(),
		base:    ctx,
		mounted: time.Now(),
	}
	f.pool = newBufPool(f.opts.ChunkSize)
	return &rootNode{fsys: f, buckets: buckets}
}

// MountOptions returns the go-fuse options a mount of root needs: a direct
// mount(2) without fusermount (containers have none), and the caches.
func MountOptions(root fs.InodeEmbedder, name string) *fs.Options {
	r, ok := root.(*rootNode)
	ttl := 5 * time.Second
	logger := slog.New(slog.DiscardHandler)
	uid, gid := uint32(syscall.Geteuid()), uint32(syscall.Getegid())
	if ok {
		ttl = r.fsys.opts.AttrTTL
		logger = r.fsys.opts.Logger
		uid, gid = r.fsys.opts.UID, r.fsys.opts.GID
	}
	return &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			FsName:            name,
			Name:              "fusion",
			// Other users of the container (an image's USER) read too,
			// and the kernel checks the mode bits and owner of every
			// node for them: without default_permissions any user could
			// write anything, whatever ls -l shows.
			AllowOther: true,
			Options:    []string{"default_permissions"},
			// Reads stay asynchronous: the kernel's read-ahead overlaps
			// the application; the reader copes with the few requests
			// that arrive out of order.
			SyncRead:     false,
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// xattrs are not stored in S3; say so once, not per file.
			DisableXAttrs: true,
			// Splicing only pays for data in a file descriptor; reads
			// here answer from memory, for which go-fuse would still
			// grow a pipe and write the header into it on every read,
			// then fail on 1 MiB reads (over the pipe-max-size of 1 MiB)
			// and log the failure to the container's stderr.
			DisableSplice: true,
			Debug:         ok && r.fsys.opts.Debug,
			// go-fuse's own complaints go to the client's log at debug
			// level, not to the stderr the container's program shares.
			Logger: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &ttl,
		// Every node is the owner's: go-fuse fills these in where the
		// attributes leave the owner 0, which they always do.
		UID: uid,
		GID: gid,
	}
}

// rootNode lists the configured buckets and nothing else.
type rootNode struct {
	fs.Inode
	fsys    *FS
	buckets []string
}

var (
	_ fs.NodeOnAdder   = (*rootNode)(nil)
	_ fs.NodeStatfser  = (*rootNode)(nil)
	_ fs.NodeMkdirer   = (*rootNode)(nil)
	_ fs.NodeCreater   = (*rootNode)(nil)
	_ fs.NodeRmdirer   = (*rootNode)(nil)
	_ fs.NodeUnlinker  = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*rootNode)(nil)
	_ fs.NodeFsyncer   = (*rootNode)(nil)
)

func (r *rootNode) OnAdd(ctx context.Context) {
	for _, b := range r.buckets {
		d := &dirNode{fsys: r.fsys, bucket: b}
		r.AddChild(b, r.NewPersistentInode(ctx, d, fs.StableAttr{Mode: syscall.S_IFDIR}), true)
	}
}

func (r *rootNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.dirAttr(&out.Attr)
	return 0
}

// Fsync of the root: nothing is pending there (see dirNode.Fsync).
func (r *rootNode) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno { return 0 }

func (r *rootNode) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// The root mirrors NXF_FUSION_BUCKETS: buckets are not created or removed
// through the mount.
func (r *rootNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (r *rootNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EPERM
}

func (r *rootNode) Rmdir(context.Context, string) syscall.Errno  { return syscall.EPERM }
func (r *rootNode) Unlink(context.Context, string) syscall.Errno { return syscall.EPERM }

// statfs reports a large, mostly free file system, so that tools that
// check for space before they write (cp, rsync, package managers) go on.
func statfs(out *fuse.StatfsOut) {
	const blocks = 1 << 40
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = blocks
	out.Bfree = blocks
	out.Bavail = blocks
	out.Files = 1 << 30
	out.Ffree = 1 << 30
	out.NameLen = 1024
}

// The modes of every directory and file: S3 stores none.
const (
	dirMode  = 0o755
	fileMode = 0o644
)

// sameMode accepts a chmod to the mode a node already has: git copies a
// file's mode onto its lock file, and a no-op must not fail. Any other
// mode cannot be stored.
func sameMode(in *fuse.SetAttrIn, mode uint32) bool {
	return in.Valid&fuse.FATTR_MODE == 0 || in.Mode&0o7777 == mode
}

func (f *FS) dirAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | dirMode
	a.Nlink = 2
	a.SetTimes(nil, &f.mounted, &f.mounted)
}

func (f *FS) fileAttr(a *fuse.Attr, size int64, mtime time.Time) {
	a.Mode = syscall.S_IFREG | fileMode
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blksize = 1 << 20
	a.Blocks = (uint64(size) + 511) / 512
	a.SetTimes(nil, &mtime, &mtime)
}

// errno maps an S3 or transport error to what a file system call returns.
// minio-go has already retried throttling and 5xx answers by then.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return syscall.ETIMEDOUT
	}
	// ToErrorResponse does not unwrap.
	var resp minio.ErrorResponse
	errors.As(err, &resp)
	switch resp.Code {
	case minio.NoSuchKey, minio.NoSuchBucket, "NotFound":
		return syscall.ENOENT
	case minio.AccessDenied, "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "AllAccessDisabled":
		return syscall.EACCES
	case "EntityTooLarge":
		return syscall.EFBIG
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return syscall.ENOENT
	case http.StatusForbidden, http.StatusUnauthorized:
		return syscall.EACCES
	}
	return syscall.EIO
}
