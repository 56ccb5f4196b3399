package fusion

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// mounted is one mount of the client on the host, for a test.
type mounted struct {
	dir string
	srv *s3test.Server
	log *syncbuf.Buffer // the client's log, debug level and up
}

// mountOn mounts buckets from srv on a temporary directory, the way the
// entry's server does, with env overriding the defaults; the mount goes
// when the test ends.
func mountOn(t testing.TB, srv *s3test.Server, env map[string]string, buckets ...string) *mounted {
	t.Helper()
	m, unmount := mountNow(t, srv, env, buckets...)
	t.Cleanup(unmount)
	return m
}

// mountNow is mountOn with the unmount left to the caller.
func mountNow(t testing.TB, srv *s3test.Server, env map[string]string, buckets ...string) (*mounted, func()) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s3")
	m := map[string]string{MountEnv: dir}
	for _, kv := range srv.Env(buckets...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, v := range env {
		m[k] = v
	}
	cfg, err := FromEnv(getenv(m))
	if err != nil {
		t.Fatal(err)
	}
	bg, cancel := context.WithCancel(context.Background())
	ctx, cancelCheck := context.WithTimeout(bg, 30*time.Second)
	defer cancelCheck()
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	server, err := Mount(ctx, bg, cfg, logger)
	if err != nil {
		cancel()
		t.Fatalf("Mount: %v\n%s", err, logs)
	}
	unmount := func() {
		if err := Unmount(server, dir); err != nil {
			t.Errorf("unmount: %v", err)
		}
		server.Wait()
		cancel()
		if t.Failed() {
			t.Logf("the client's log:\n%s", logs)
		}
	}
	return &mounted{dir: dir, srv: srv, log: logs}, unmount
}

func (m *mounted) path(parts ...string) string {
	return filepath.Join(append([]string{m.dir}, parts...)...)
}

func put(t testing.TB, srv *s3test.Server, bucket, key string, data []byte) {
	t.Helper()
	_, err := srv.Client.PutObject(t.Context(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func getObject(t testing.TB, srv *s3test.Server, bucket, key string) []byte {
	t.Helper()
	obj, err := srv.Client.GetObject(t.Context(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return b
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

func TestMountListAndStat(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b1, b2 := srv.Bucket(t, "first"), srv.Bucket(t, "second")
	put(t, srv, b1, "a.txt", []byte("alpha\n"))
	put(t, srv, b1, "dir/b.txt", []byte("beta"))
	put(t, srv, b1, "dir/deeper/c.txt", []byte("c"))
	put(t, srv, b1, "empty/", nil)
	put(t, srv, b2, "z", []byte("zz"))
	put(t, srv, b2, "later/x", []byte("x"))
	put(t, srv, b2, "later.txt", []byte("123"))
	before := time.Now().Add(-time.Minute)
	m := mountOn(t, srv, nil, b1, b2)

	// A lookup with no listing before it lists the directory.
	t.Run("stat without a listing", func(t *testing.T) {
		if fi, err := os.Stat(m.path("second", "later.txt")); err != nil || fi.Size() != 3 {
			t.Errorf("later.txt: %v, %v", fi, err)
		}
		if fi, err := os.Stat(m.path("second", "later")); err != nil || !fi.IsDir() {
			t.Errorf("later: %v, %v", fi, err)
		}
		if _, err := os.Stat(m.path("second", "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing: %v, want ENOENT", err)
		}
	})

	tests := []struct {
		dir  string
		want []string
	}{
		{"", []string{"first/", "second/"}},
		{"first", []string{"a.txt", "dir/", "empty/"}},
		{"first/dir", []string{"b.txt", "deeper/"}},
		{"first/dir/deeper", []string{"c.txt"}},
		{"first/empty", nil},
		{"second", []string{"later/", "later.txt", "z"}},
	}
	for _, tt := range tests {
		t.Run("ls "+tt.dir, func(t *testing.T) {
			if got := names(t, m.path(tt.dir)); !slices.Equal(got, tt.want) {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
	stats := []struct {
		path string
		dir  bool
		size int64
	}{
		{"first/a.txt", false, 6},
		{"first/dir/b.txt", false, 4},
		{"first/dir", true, 0},
		{"first/dir/deeper/c.txt", false, 1},
		{"second/z", false, 2},
	}
	for _, tt := range stats {
		t.Run("stat "+tt.path, func(t *testing.T) {
			fi, err := os.Stat(m.path(tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() != tt.dir || (!tt.dir && fi.Size() != tt.size) {
				t.Errorf("dir %v size %d, want dir %v size %d", fi.IsDir(), fi.Size(), tt.dir, tt.size)
			}
			if !tt.dir && (fi.ModTime().Before(before) || fi.ModTime().After(time.Now().Add(time.Minute))) {
				t.Errorf("mtime %v, want about now", fi.ModTime())
			}
		})
	}
	t.Run("cat", func(t *testing.T) {
		b, err := os.ReadFile(m.path("first", "a.txt"))
		if err != nil || string(b) != "alpha\n" {
			t.Errorf("%q, %v", b, err)
		}
	})
}

// TestMountPagination lists past one ListObjectsV2 page (1000 keys).
func TestMountPagination(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "many")
	const n = 1100
	var want []string
	for i := range n {
		name := fmt.Sprintf("k%05d", i)
		srv.WriteObject(t, b, "p/"+name, []byte(name))
		want = append(want, name)
	}
	m := mountOn(t, srv, nil, b)
	got := names(t, m.path(b, "p"))
	if !slices.Equal(got, want) {
		t.Fatalf("%d entries (first %q, last %q), want %d", len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], n)
	}
	data, err := os.ReadFile(m.path(b, "p", "k01099"))
	if err != nil || string(data) != "k01099" {
		t.Errorf("k01099: %q, %v", data, err)
	}
}

// TestMountReadBig reads a 100 MB object whole, then at random offsets
// (seeks restart the ranged GET).
func TestMountReadBig(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "big")
	data := randomBytes(1, 100<<20)
	srv.WriteObject(t, b, "data.bin", data)
	m := mountOn(t, srv, nil, b)

	f, err := os.Open(m.path(b, "data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("read %d bytes, %v; want %d", n, err, len(data))
	}
	if got, want := h.Sum(nil), sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatal("content differs")
	}
	// go-fuse once logged a failed splice for every 1 MiB read, to the
	// stderr of the container's program.
	if l := m.log.String(); strings.Contains(l, "splice") {
		t.Errorf("a sequential read logged splice failures:\n%.2000s", l)
	}
	// Four readers on one descriptor, each through its own quarter: the
	// requests reach the stream interleaved and out of order.
	var wg sync.WaitGroup
	quarter := int64(len(data) / 4)
	for q := range int64(4) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for off := q * quarter; off < (q+1)*quarter; off += int64(len(buf)) {
				n, err := f.ReadAt(buf, off)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Errorf("ReadAt %d: %v", off, err)
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Errorf("ReadAt %d: content differs", off)
					return
				}
			}
		})
	}
	wg.Wait()
	r := rand.New(rand.NewPCG(2, 2))
	buf := make([]byte, 64<<10)
	for range 50 {
		off := r.Int64N(int64(len(data)))
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt %d: %v", off, err)
		}
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt %d: content differs", off)
		}
	}
}

// TestMountWrite writes through the mount and reads back through S3.
func TestMountWrite(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "out")
	m := mountOn(t, srv, nil, b)
	tests := []struct {
		name string
		key  string
		data []byte
	}{
		{"small", "small.txt", []byte("hello through FUSE\n")},
		{"empty", "empty", nil},
		{"nested", "a/b/c.txt", []byte("nested")},
		// Past one 16 MiB part: a multipart upload of three parts.
		{"multipart", "multi.bin", randomBytes(3, 40<<20+123)},
	}
	if err := os.MkdirAll(m.path(b, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.path(b, tt.key)
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			for rest := tt.data; len(rest) > 0; {
				n := min(len(rest), 1<<20+7) // uneven writes
				if _, err := f.Write(rest[:n]); err != nil {
					t.Fatalf("write: %v", err)
				}
				rest = rest[n:]
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if got := getObject(t, srv, b, tt.key); !bytes.Equal(got, tt.data) {
				t.Errorf("S3 has %d bytes, want %d", len(got), len(tt.data))
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Size() != int64(len(tt.data)) {
				t.Errorf("stat: %v, %v; want size %d", fi, err, len(tt.data))
			}
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, tt.data) {
				t.Errorf("read back through the mount: %d bytes, %v", len(got), err)
			}
		})
	}
	t.Run("overwrite with O_TRUNC", func(t *testing.T) {
		p := m.path(b, "small.txt")
		if err := os.WriteFile(p, []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := getObject(t, srv, b, "small.txt"); string(got) != "new" {
			t.Errorf("S3 has %q", got)
		}
	})
	t.Run("shell redirection: dup, close, write", func(t *testing.T) {
		// What `sh -c 'echo x > file'` does: the first close flushes
		// before any write.
		f, err := os.Create(m.path(b, "dup.txt"))
		if err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := syscall.Write(fd, []byte("via dup")); err != nil {
			t.Fatalf("write after the first close: %v", err)
		}
		if err := syscall.Close(fd); err != nil {
			t.Fatalf("close: %v", err)
		}
		if got := getObject(t, srv, b, "dup.txt"); string(got) != "via dup" {
			t.Errorf("S3 has %q", got)
		}
	})
}

// TestMountOps covers the namespace operations and the refusals.
func TestMountOps(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "ops")
	other := srv.Bucket(t, "other")
	put(t, srv, b, "file.txt", []byte("content"))
	put(t, srv, b, "full/x", []byte("x"))
	put(t, srv, b, "dir2/y", []byte("y"))
	m := mountOn(t, srv, nil, b, other)
	p := func(parts ...string) string { return m.path(append([]string{b}, parts...)...) }
	exists := func(bucket, key string) bool {
		_, err := srv.Client.StatObject(t.Context(), bucket, key, minio.StatObjectOptions{})
		return err == nil
	}

	tests := []struct {
		name    string
		op      func() error
		wantErr error // nil: success
		check   func(t *testing.T)
	}{
		{name: "mkdir", op: func() error { return os.Mkdir(p("newdir"), 0o755) }, check: func(t *testing.T) {
			if !exists(b, "newdir/") {
				t.Error("no marker object")
			}
			if fi, err := os.Stat(p("newdir")); err != nil || !fi.IsDir() {
				t.Errorf("stat: %v %v", fi, err)
			}
		}},
		{name: "mkdir existing", op: func() error { return os.Mkdir(p("full"), 0o755) }, wantErr: syscall.EEXIST},
		{name: "rmdir empty", op: func() error { return os.Remove(p("newdir")) }, check: func(t *testing.T) {
			if exists(b, "newdir/") {
				t.Error("marker left")
			}
			if _, err := os.Stat(p("newdir")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stat after rmdir: %v", err)
			}
		}},
		{name: "rmdir not empty", op: func() error { return syscall.Rmdir(p("full")) }, wantErr: syscall.ENOTEMPTY},
		{name: "rm", op: func() error { return os.Remove(p("dir2", "y")) }, check: func(t *testing.T) {
			if exists(b, "dir2/y") {
				t.Error("object left")
			}
		}},
		{name: "rm missing", op: func() error { return syscall.Unlink(p("nope")) }, wantErr: syscall.ENOENT},
		{name: "rename file", op: func() error { return os.Rename(p("file.txt"), p("full", "moved.txt")) }, check: func(t *testing.T) {
			if exists(b, "file.txt") || string(getObject(t, srv, b, "full/moved.txt")) != "content" {
				t.Error("not moved")
			}
			if got, err := os.ReadFile(p("full", "moved.txt")); err != nil || string(got) != "content" {
				t.Errorf("read after rename: %q %v", got, err)
			}
		}},
		{name: "rename across buckets", op: func() error { return os.Rename(p("full", "moved.txt"), m.path(other, "m.txt")) }, check: func(t *testing.T) {
			if exists(b, "full/moved.txt") || string(getObject(t, srv, other, "m.txt")) != "content" {
				t.Error("not moved")
			}
		}},
		{name: "rename directory", op: func() error { return syscall.Rename(p("full"), p("full2")) }, wantErr: syscall.ENOTSUP},
		{name: "append", op: func() error {
			f, err := os.OpenFile(p("full", "x"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			if _, err := f.WriteString("+"); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}, check: func(t *testing.T) {
			if got := getObject(t, srv, b, "full/x"); string(got) != "x+" {
				t.Errorf("S3 has %q, want x+", got)
			}
		}},
		{name: "read-write open", op: func() error {
			f, err := os.OpenFile(p("full", "x"), os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			return err
		}, wantErr: syscall.ENOTSUP},
		{name: "write in place (no O_TRUNC)", op: func() error {
			f, err := os.OpenFile(p("full", "x"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("y"))
			return err
		}, wantErr: syscall.ENOTSUP, check: func(t *testing.T) {
			if got := getObject(t, srv, b, "full/x"); string(got) != "x+" {
				t.Errorf("S3 has %q, want it unchanged", got)
			}
		}},
		{name: "random write", op: func() error {
			f, err := os.Create(p("rand.bin"))
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.Write([]byte("start")); err != nil {
				return err
			}
			_, err = f.WriteAt([]byte("gap"), 1000)
			return err
		}, wantErr: syscall.ENOTSUP},
		{name: "symlink", op: func() error { return os.Symlink("x", p("link")) }, wantErr: syscall.ENOTSUP},
		{name: "hard link", op: func() error { return os.Link(p("full", "x"), p("hard")) }, wantErr: syscall.ENOTSUP},
		{name: "chmod", op: func() error { return os.Chmod(p("full", "x"), 0o600) }, wantErr: syscall.ENOTSUP},
		{name: "chmod to the mode it has", op: func() error { return os.Chmod(p("full", "x"), 0o644) }},
		{name: "chmod a directory to the mode it has", op: func() error { return os.Chmod(p("full"), 0o755) }},
		{name: "touch existing (times are ignored)", op: func() error {
			now := time.Now()
			return os.Chtimes(p("full", "x"), now, now)
		}},
		{name: "truncate to zero", op: func() error { return os.Truncate(p("full", "x"), 0) }, check: func(t *testing.T) {
			if got := getObject(t, srv, b, "full/x"); len(got) != 0 {
				t.Errorf("S3 has %q", got)
			}
		}},
		{name: "truncate to a size", op: func() error { return os.Truncate(p("full", "x"), 10) }, wantErr: syscall.ENOTSUP},
		{name: "mkdir in the root", op: func() error { return os.Mkdir(m.path("newbucket"), 0o755) }, wantErr: syscall.EPERM},
		{name: "file in the root", op: func() error { return os.WriteFile(m.path("f"), nil, 0o644) }, wantErr: syscall.EPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("%v, want success", err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("%v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

// TestMountUploadErrorAtClose: when the upload fails, close(2) says so.
func TestMountUploadErrorAtClose(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "gone")
	m := mountOn(t, srv, nil, b)
	f, err := os.Create(m.path(b, "lost.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(4, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// The bucket disappears under the upload.
	if err := os.RemoveAll(filepath.Join(srv.Dir, b)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("close succeeded, want the upload's error")
	} else {
		t.Logf("close: %v", err)
	}
}

func TestMountErrors(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "exists")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown bucket", map[string]string{BucketsEnv: "exists,missing-bucket"}, `bucket "missing-bucket" at ` + srv.URL + ` does not exist; fix NXF_FUSION_BUCKETS`},
		{"wrong secret", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, "the secret key does not match the access key (SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY"},
		{"unknown access key", map[string]string{"AWS_ACCESS_KEY_ID": "nobody"}, "check AWS_ACCESS_KEY_ID"},
		{"anonymous, private bucket", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "access denied without credentials (the bucket is not public); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"unreachable endpoint", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "cannot reach S3 at http://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s3")
			m := map[string]string{MountEnv: dir}
			for _, kv := range srv.Env(b) {
				k, v, _ := strings.Cut(kv, "=")
				m[k] = v
			}
			for k, v := range tt.env {
				m[k] = v
			}
			cfg, err := FromEnv(getenv(m))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			server, err := Mount(ctx, ctx, cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				_ = Unmount(server, dir)
				t.Fatal("mounted")
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, want an *Error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), s3test.SecretKey) || strings.Contains(err.Error(), "\n") {
				t.Errorf("not one clean line: %q", err)
			}
		})
	}
}
