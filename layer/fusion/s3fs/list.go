package s3fs

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// listPage is what one ListObjectsV2 page holds, keys and prefixes
// together: a lookup lists the directory if it fits in one.
const listPage = 1000

// list returns the directory's entries, from the cache while it is fresh.
// With onePage, it gives up (complete false, and the directory is marked
// big for DirTTL) rather than ask for a second page.
func (d *dirNode) list(ctx context.Context, onePage bool) (entries map[string]entry, complete bool, _ syscall.Errno) {
	if e := d.fresh(); e != nil {
		return e, true, 0
	}
	d.mu.Lock()
	if onePage && time.Since(d.big) < d.fsys.opts.DirTTL {
		d.mu.Unlock()
		return nil, false, 0
	}
	prefix := d.prefix
	d.mu.Unlock()
	// Lookups arrive together (a shell's glob, ls -l, parallel opens on
	// a fresh mount): one listing answers them all.
	type result struct {
		entries  map[string]entry
		complete bool
	}
	// No caller's interruption ends the listing the others wait for; an
	// interrupted caller stops waiting for it.
	ch := d.fsys.lists.DoChan(fmt.Sprintf("%s/%s %v", d.bucket, prefix, onePage), func() (any, error) {
		if e := d.fresh(); e != nil {
			// A listing ended between the check above and this one.
			return result{e, true}, nil
		}
		entries, complete, eno := d.fetchList(context.WithoutCancel(ctx), prefix, onePage)
		if eno != 0 {
			return nil, eno
		}
		return result{entries, complete}, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, false, errno(res.Err)
		}
		r := res.Val.(result)
		return r.entries, r.complete, 0
	case <-ctx.Done():
		return nil, false, errno(ctx.Err())
	}
}

// fresh returns the cached listing while it is fresh, else nil.
func (d *dirNode) fresh() map[string]entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries != nil && time.Since(d.listed) < d.fsys.opts.DirTTL {
		return d.entries
	}
	return nil
}

// fetchList lists prefix, as list says.
func (d *dirNode) fetchList(ctx context.Context, prefix string, onePage bool) (entries map[string]entry, complete bool, _ syscall.Errno) {
	start := time.Now()
	entries = make(map[string]entry)
	seen := 0
	// Pages of 1000 keys with a "/" delimiter, so each holds only this
	// level. The iterator asks for the next page only when the loop
	// goes on past the last entry of this one.
	for obj := range d.fsys.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, MaxKeys: listPage}) {
		if obj.Err != nil {
			d.fsys.opts.Logger.Warn("list failed", "bucket", d.bucket, "prefix", prefix, "err", obj.Err)
			return nil, false, errno(obj.Err)
		}
		if seen++; onePage && seen > listPage-1 {
			// Perhaps more: a page may hold exactly this many.
			d.mu.Lock()
			d.big = start
			d.mu.Unlock()
			return nil, false, 0
		}
		addEntry(entries, strings.TrimPrefix(obj.Key, prefix), obj)
	}
	d.mu.Lock()
	if d.prefix == prefix {
		d.entries, d.listed = entries, start
	}
	d.mu.Unlock()
	return entries, true, 0
}

// addEntry records what a listing says about name.
func addEntry(entries map[string]entry, name string, obj minio.ObjectInfo) {
	if sub, ok := strings.CutSuffix(name, "/"); ok {
		if sub == "" || strings.Contains(sub, "/") {
			return // the directory's own marker
		}
		// A prefix wins over an object of the same name: its contents
		// would be unreachable otherwise.
		entries[sub] = entry{dir: true}
		return
	}
	if !validName(name) {
		return
	}
	if _, dup := entries[name]; dup {
		return
	}
	entries[name] = entry{size: obj.Size, mtime: obj.LastModified}
}

// validName rejects keys that no file name can show: empty components
// ("a//b") and the names the kernel reserves.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.Contains(name, "/")
}

// probe asks S3 about one name: a HEAD for an object first, since files
// are what is looked up most, then a one-key listing for a prefix. Unlike
// a listing, an object shadows a prefix of the same name here; S3 tools
// seldom make both.
func (d *dirNode) probe(ctx context.Context, name string) (entry, bool, syscall.Errno) {
	key := d.key(name)
	info, err := d.fsys.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return entry{size: info.Size, mtime: info.LastModified}, true, 0
	}
	if eno := errno(err); eno != syscall.ENOENT {
		return entry{}, false, eno
	}
	isDir, eno := d.fsys.nonEmpty(ctx, d.bucket, key+"/")
	if eno != 0 || !isDir {
		return entry{}, false, eno
	}
	return entry{dir: true}, true, 0
}

// nonEmpty reports whether any key starts with prefix.
func (f *FS) nonEmpty(ctx context.Context, bucket, prefix string) (bool, syscall.Errno) {
	keys, eno := f.firstKeys(ctx, bucket, prefix, 1)
	return len(keys) > 0, eno
}

// firstKeys returns up to n keys under prefix, at any depth.
func (f *FS) firstKeys(ctx context.Context, bucket, prefix string, n int) ([]string, syscall.Errno) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister's pagination
	var keys []string
	for obj := range f.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, MaxKeys: n}) {
		if obj.Err != nil {
			return nil, errno(obj.Err)
		}
		keys = append(keys, obj.Key)
		if len(keys) == n {
			break
		}
	}
	return keys, 0
}
