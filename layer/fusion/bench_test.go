package fusion

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/layer/fusion/s3fs"
)

// BenchmarkSeqRead reads a 256 MiB object through the mount and with a
// direct GET from the same server, alternately, and reports the ratio of
// the medians (target ≤ 1.3).
//
//	go test ./layer/fusion -run '^$' -bench SeqRead -benchtime 5x
func BenchmarkSeqRead(b *testing.B) {
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "bench")
	const size = 256 << 20
	srv.WriteObject(b, bucket, "big.bin", randomBytes(5, size))
	m := mountOn(b, srv, nil, bucket)
	core := minio.Core{Client: srv.Client}
	buf := make([]byte, 1<<20)

	direct := func() time.Duration {
		return timedRead(b, "direct GET", getter(b.Context(), core, bucket, "big.bin"), size, buf)
	}
	mounted := func() time.Duration { return timedRead(b, "mount", opener(m.path(bucket, "big.bin")), size, buf) }
	direct() // warm the server's page cache and the connection
	var ds, ms []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ds = append(ds, direct())
		ms = append(ms, mounted())
	}
	b.StopTimer()
	report(b, "read", ds, ms, size)
}

// BenchmarkList lists a prefix of 5,000 objects: `ls` (readdir) and
// `ls -l` (readdir and a stat of each) on a fresh mount, so nothing is
// cached, against a direct ListObjectsV2 loop (target ≤ 1.5).
//
//	go test ./layer/fusion -run '^$' -bench List -benchtime 5x
func BenchmarkList(b *testing.B) {
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "list")
	const n = 5000
	for i := range n {
		srv.WriteObject(b, bucket, fmt.Sprintf("p/obj-%05d", i), []byte("x"))
	}
	direct := func() time.Duration { return timedList(b.Context(), b, srv.Client, bucket, "p/", n) }
	ls := func(long bool) time.Duration {
		m := mountOn(b, srv, nil, bucket)
		start := time.Now()
		entries, err := os.ReadDir(m.path(bucket, "p"))
		if err != nil || len(entries) != n {
			b.Fatalf("readdir: %d entries, %v", len(entries), err)
		}
		if long {
			for _, e := range entries {
				if _, err := os.Lstat(m.path(bucket, "p", e.Name())); err != nil {
					b.Fatal(err)
				}
			}
		}
		return time.Since(start)
	}
	direct()
	var ds, short, long []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ds = append(ds, direct())
		short = append(short, ls(false))
		long = append(long, ls(true))
	}
	b.StopTimer()
	report(b, "ls", ds, short, 0)
	report(b, "ls-l", ds, long, 0)
}

// timedRead reads what open opens to the end in reads of len(buf)
// (readAll: io.CopyBuffer to io.Discard would read 8 KiB at a time),
// checks that it is size bytes, and returns how long that took, the open
// included. what names the reader in a failure.
func timedRead(tb testing.TB, what string, open func() (io.ReadCloser, error), size int64, buf []byte) time.Duration {
	tb.Helper()
	start := time.Now()
	r, err := open()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	n, err := readAll(r, buf)
	r.Close()
	if err != nil || n != size {
		tb.Fatalf("%s: read %d bytes, %v; want %d", what, n, err, size)
	}
	return time.Since(start)
}

// timedList lists prefix with ListObjectsV2, checks that it holds want
// keys, and returns how long that took.
func timedList(ctx context.Context, tb testing.TB, client *minio.Client, bucket, prefix string, want int) time.Duration {
	tb.Helper()
	start := time.Now()
	n := 0
	for obj := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			tb.Fatal(obj.Err)
		}
		n++
	}
	if n != want {
		tb.Fatalf("direct list of %s: %d keys, want %d", prefix, n, want)
	}
	return time.Since(start)
}

// getter opens an object with one GET; opener opens a file.
func getter(ctx context.Context, core minio.Core, bucket, key string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		body, _, _, err := core.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		return body, err
	}
}

func opener(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// report logs the medians and reports their ratio as a metric.
func report(b *testing.B, what string, direct, mounted []time.Duration, size int64) {
	b.Helper()
	d, m := median(direct), median(mounted)
	ratio := float64(m) / float64(d)
	if size > 0 {
		b.Logf("%s: direct %v (%.0f MiB/s), mount %v (%.0f MiB/s), ratio %.2f", what,
			d, float64(size)/(1<<20)/d.Seconds(), m, float64(size)/(1<<20)/m.Seconds(), ratio)
	} else {
		b.Logf("%s: direct %v, mount %v, ratio %.2f", what, d, m, ratio)
	}
	b.ReportMetric(ratio, what+"-ratio")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkSeqReadCeiling measures what FUSE alone costs on this machine:
// the same 256 MiB sequential read from a mount with the client's options
// whose file is a byte slice in memory (no S3, no read-ahead queue, no
// copy in the server), against the same direct GET as BenchmarkSeqRead.
// Its ratio is the floor that no FUSE client can go under here.
//
//	go test ./layer/fusion -run '^$' -bench SeqRead -benchtime 5x
func BenchmarkSeqReadCeiling(b *testing.B) {
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "ceiling")
	const size = 256 << 20
	data := randomBytes(6, size)
	srv.WriteObject(b, bucket, "big.bin", data)
	core := minio.Core{Client: srv.Client}
	buf := make([]byte, 1<<20)

	dir := b.TempDir()
	root := &fs.Inode{}
	opts := s3fs.MountOptions(root, "fusion-ceiling")
	opts.OnAdd = func(ctx context.Context) {
		root.AddChild("big.bin", root.NewPersistentInode(ctx, &memFile{data: data}, fs.StableAttr{}), false)
	}
	server, err := fs.Mount(dir, root, opts)
	if err != nil {
		b.Fatalf("mount: %v", err)
	}
	b.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			b.Errorf("unmount: %v", err)
		}
	})

	get := getter(b.Context(), core, bucket, "big.bin")
	open := opener(filepath.Join(dir, "big.bin"))
	direct := func() time.Duration { return timedRead(b, "direct GET", get, size, buf) }
	mounted := func() time.Duration { return timedRead(b, "memory mount", open, size, buf) }
	direct()
	mounted()
	var ds, ms []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ds = append(ds, direct())
		ms = append(ms, mounted())
	}
	b.StopTimer()
	report(b, "read", ds, ms, size)
}

// memFile is a read-only file in memory that, unlike fs.MemRegularFile,
// does not ask the kernel to keep its pages across opens: each read of
// the benchmark goes through FUSE, as a read of an S3 object does.
type memFile struct {
	fs.Inode
	data []byte
}

func (f *memFile) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (f *memFile) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(len(f.data))
	return 0
}

func (f *memFile) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	off = min(off, int64(len(f.data)))
	end := min(off+int64(len(dest)), int64(len(f.data)))
	return fuse.ReadResultData(f.data[off:end]), 0
}
