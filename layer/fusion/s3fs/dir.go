package s3fs

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"
)

// entry is what a listing says about one name in a directory.
type entry struct {
	dir   bool
	size  int64
	mtime time.Time
}

// dirNode is a bucket (prefix "") or a prefix ending in "/" inside one.
type dirNode struct {
	fs.Inode
	fsys   *FS
	bucket string

	mu     sync.Mutex
	prefix string
	// entries is the last complete listing, taken at listed. Lookups
	// within DirTTL are answered from it, so `ls -l` of a large
	// directory costs its listing and no HEAD per file.
	entries map[string]entry
	listed  time.Time
	// big is when a lookup found more than one page here: lookups probe
	// the name alone until DirTTL has passed.
	big time.Time
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeSetattrer = (*dirNode)(nil)
	_ fs.NodeMkdirer   = (*dirNode)(nil)
	_ fs.NodeRmdirer   = (*dirNode)(nil)
	_ fs.NodeUnlinker  = (*dirNode)(nil)
	_ fs.NodeCreater   = (*dirNode)(nil)
	_ fs.NodeRenamer   = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*dirNode)(nil)
	_ fs.NodeFsyncer   = (*dirNode)(nil)
)

func (d *dirNode) key(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.prefix + name
}

// invalidate drops the cached listing after a change made through the
// mount, so the next readdir shows it.
func (d *dirNode) invalidate() {
	d.mu.Lock()
	d.entries, d.listed = nil, time.Time{}
	d.mu.Unlock()
}

func (d *dirNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.dirAttr(&out.Attr)
	return 0
}

// Setattr accepts time changes (touch, cp -p, tar) and ignores them: S3
// keeps no directory times. Other changes cannot be stored.
func (d *dirNode) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if in.Valid&^(timeAttrs|fuse.FATTR_MODE) != 0 || !sameMode(in, dirMode) {
		return syscall.ENOTSUP
	}
	d.fsys.dirAttr(&out.Attr)
	return 0
}

// Fsync of a directory (git, sqlite and rename-into-place writers ask for
// it) has nothing to wait for: every change to a directory is a request
// that S3 answered before the call that made it returned.
func (d *dirNode) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno { return 0 }

func (d *dirNode) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	entries, _, eno := d.list(ctx, false)
	if eno != 0 {
		return nil, eno
	}
	out := make([]fuse.DirEntry, 0, len(entries))
	for name, e := range entries {
		mode := uint32(syscall.S_IFREG)
		if e.dir {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: name, Mode: mode})
	}
	// Files being written exist only here until they are closed.
	for name, child := range d.Children() {
		if f, ok := child.Operations().(*fileNode); ok && f.isWriting() {
			if _, listed := entries[name]; !listed {
				out = append(out, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
			}
		}
	}
	slices.SortFunc(out, func(a, b fuse.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return fs.NewListDirStream(out), 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if child := d.GetChild(name); child != nil {
		if f, ok := child.Operations().(*fileNode); ok && f.isWriting() {
			f.attr(&out.Attr)
			return child, 0
		}
	}
	// A cold lookup lists the directory, if it is small, once for all
	// its names: opening the files of a directory costs one LIST, then
	// a GET each. Otherwise the name alone is probed.
	entries, complete, eno := d.list(ctx, true)
	if eno != 0 {
		return nil, eno
	}
	e, found := entries[name]
	if !complete {
		e, found, eno = d.probe(ctx, name)
		if eno != 0 {
			return nil, eno
		}
	}
	if !found {
		return nil, syscall.ENOENT
	}
	return d.child(ctx, name, e, out), 0
}

// child returns the inode for name, reusing the one the tree has when it
// is of the same kind, so open files keep their node.
func (d *dirNode) child(ctx context.Context, name string, e entry, out *fuse.EntryOut) *fs.Inode {
	existing := d.GetChild(name)
	if e.dir {
		if existing != nil {
			if _, ok := existing.Operations().(*dirNode); ok {
				d.fsys.dirAttr(&out.Attr)
				return existing
			}
		}
		d.fsys.dirAttr(&out.Attr)
		return d.NewInode(ctx, &dirNode{fsys: d.fsys, bucket: d.bucket, prefix: d.key(name) + "/"},
			fs.StableAttr{Mode: syscall.S_IFDIR})
	}
	if existing != nil {
		if f, ok := existing.Operations().(*fileNode); ok {
			f.update(e.size, e.mtime)
			f.attr(&out.Attr)
			return existing
		}
	}
	f := &fileNode{fsys: d.fsys, bucket: d.bucket, key: d.key(name), size: e.size, mtime: e.mtime}
	f.attr(&out.Attr)
	return d.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG})
}

// Mkdir creates the marker object "prefix/name/", as the S3 console does,
// so the empty directory is listed until something is put in it.
func (d *dirNode) Mkdir(ctx context.Context, name string, _ uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	key := d.key(name) + "/"
	if _, found, eno := d.probe(ctx, name); eno != 0 {
		return nil, eno
	} else if found {
		return nil, syscall.EEXIST
	}
	_, err := d.fsys.client.PutObject(ctx, d.bucket, key, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
	if err != nil {
		d.fsys.opts.Logger.Warn("mkdir failed", "bucket", d.bucket, "key", key, "err", err)
		return nil, errno(err)
	}
	d.invalidate()
	return d.child(ctx, name, entry{dir: true}, out), 0
}

// Rmdir removes an empty prefix: its marker, if it has one.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	prefix := d.key(name) + "/"
	keys, eno := d.fsys.firstKeys(ctx, d.bucket, prefix, 2)
	if eno != 0 {
		return eno
	}
	switch {
	case len(keys) == 0:
		return syscall.ENOENT
	case len(keys) > 1 || keys[0] != prefix:
		return syscall.ENOTEMPTY
	}
	if err := d.fsys.client.RemoveObject(ctx, d.bucket, prefix, minio.RemoveObjectOptions{}); err != nil {
		return errno(err)
	}
	d.invalidate()
	return 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	key := d.key(name)
	if _, err := d.fsys.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{}); err != nil {
		return errno(err)
	}
	if err := d.fsys.client.RemoveObject(ctx, d.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		d.fsys.opts.Logger.Warn("unlink failed", "bucket", d.bucket, "key", key, "err", err)
		return errno(err)
	}
	d.invalidate()
	return 0
}

// Create starts a new object; it exists in S3 once the file is closed.
func (d *dirNode) Create(ctx context.Context, name string, flags, _ uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	f := &fileNode{fsys: d.fsys, bucket: d.bucket, key: d.key(name), mtime: time.Now(), parent: d}
	w := f.startWrite(false, false) // a new node: no other writer, nothing to truncate
	f.attr(&out.Attr)
	ino := d.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG})
	return ino, w, fuse.FOPEN_DIRECT_IO, 0
}

// renameFlags are the renameat2 flags; RENAME_NOREPLACE is honoured,
// RENAME_EXCHANGE cannot be done atomically (or at all) in S3.
const renameNoReplace = 1

// Rename copies the object server-side, then deletes the original: S3 has
// no rename. Directories would need a copy of every key under them, which
// is neither atomic nor cheap, so they are refused.
func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&^renameNoReplace != 0 {
		return syscall.ENOTSUP
	}
	dst, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EPERM // into the root
	}
	child := d.GetChild(name)
	if child == nil {
		return syscall.ENOENT
	}
	f, ok := child.Operations().(*fileNode)
	if !ok {
		return syscall.ENOTSUP
	}
	if f.isWriting() {
		return syscall.EBUSY
	}
	srcKey, dstKey := d.key(name), dst.key(newName)
	if d.bucket == dst.bucket && srcKey == dstKey {
		return 0 // a copy onto itself, then a delete, would lose it
	}
	// Only RENAME_NOREPLACE needs to know what is there: a plain rename
	// replaces it, and the listing and HEAD would be two requests for
	// nothing.
	if flags&renameNoReplace != 0 {
		if _, found, eno := dst.probe(ctx, newName); eno != 0 {
			return eno
		} else if found {
			return syscall.EEXIST
		}
	}
	if err := d.fsys.copyObject(ctx, d.bucket, srcKey, dst.bucket, dstKey); err != nil {
		d.fsys.opts.Logger.Warn("rename: copy failed", "from", d.bucket+"/"+srcKey, "to", dst.bucket+"/"+dstKey, "err", err)
		return errno(err)
	}
	if err := d.fsys.client.RemoveObject(ctx, d.bucket, srcKey, minio.RemoveObjectOptions{}); err != nil {
		d.fsys.opts.Logger.Warn("rename: delete of the source failed; both copies exist", "key", d.bucket+"/"+srcKey, "err", err)
		return errno(err)
	}
	f.moved(dst.bucket, dstKey, dst)
	d.invalidate()
	dst.invalidate()
	return 0
}

// copyObject copies within S3. A single CopyObject takes up to 5 GiB;
// ComposeObject copies bigger objects part by part.
func (f *FS) copyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string) error {
	src := minio.CopySrcOptions{Bucket: srcBucket, Object: srcKey}
	dst := minio.CopyDestOptions{Bucket: dstBucket, Object: dstKey}
	info, err := f.client.StatObject(ctx, srcBucket, srcKey, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("stat %s/%s: %w", srcBucket, srcKey, err)
	}
	if info.Size > 5<<30 {
		_, err = f.client.ComposeObject(ctx, dst, src)
	} else {
		_, err = f.client.CopyObject(ctx, dst, src)
	}
	if err != nil {
		return fmt.Errorf("copy %s/%s to %s/%s: %w", srcBucket, srcKey, dstBucket, dstKey, err)
	}
	return nil
}
