package fusion

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/internal/s3test"
)

// TestMountFsync: fsync and fdatasync on a write handle leave the object
// in S3 as written so far, before close, and the file stays open for
// more; on a read handle and a directory they succeed.
func TestMountFsync(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "sync")
	put(t, srv, b, "read.txt", []byte("read only"))
	put(t, srv, b, "log.txt", []byte("line 1\n"))
	m := mountOn(t, srv, nil, b)

	syncs := []struct {
		name string
		sync func(f *os.File) error
	}{
		{"fsync", func(f *os.File) error { return f.Sync() }},
		{"fdatasync", func(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }},
	}
	for _, s := range syncs {
		t.Run(s.name+" read handle", func(t *testing.T) {
			f, err := os.Open(m.path(b, "read.txt"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := s.sync(f); err != nil {
				t.Errorf("%v, want success", err)
			}
		})
		t.Run(s.name+" directory", func(t *testing.T) {
			for _, dir := range []string{m.dir, m.path(b)} {
				f, err := os.Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.sync(f); err != nil {
					t.Errorf("%s: %v, want success", dir, err)
				}
				f.Close()
			}
		})
		t.Run(s.name+" before any write", func(t *testing.T) {
			key := s.name + "-empty"
			f, err := os.Create(m.path(b, key))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := s.sync(f); err != nil {
				t.Fatal(err)
			}
			if got := getObject(t, srv, b, key); len(got) != 0 {
				t.Errorf("S3 has %d bytes, want the empty object", len(got))
			}
		})
	}

	// Each step writes, syncs, and finds in S3 everything written so far,
	// while the file is still open. 20 MiB and more crosses the 16 MiB
	// part: a write after a sync sends the object again, then more.
	t.Run("write, sync, write on", func(t *testing.T) {
		for _, s := range syncs {
			key := s.name + ".bin"
			f, err := os.Create(m.path(b, key))
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for i, n := range []int{3 << 20, 20<<20 + 5, 1, 7 << 20} {
				chunk := randomBytes(uint64(10+i), n)
				if _, err := f.Write(chunk); err != nil {
					t.Fatalf("%s: write %d: %v", s.name, i, err)
				}
				want = append(want, chunk...)
				if err := s.sync(f); err != nil {
					t.Fatalf("%s %d: %v", s.name, i, err)
				}
				if got := getObject(t, srv, b, key); !bytes.Equal(got, want) {
					t.Fatalf("%s %d: S3 has %d bytes, want the %d written", s.name, i, len(got), len(want))
				}
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close after %s: %v", s.name, err)
			}
			if got, err := os.ReadFile(m.path(b, key)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("read back: %d bytes, %v; want %d", len(got), err, len(want))
			}
		}
	})

	t.Run("append", func(t *testing.T) {
		f, err := os.OpenFile(m.path(b, "log.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("line 2\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := getObject(t, srv, b, "log.txt"); string(got) != "line 1\nline 2\n" {
			t.Errorf("S3 has %q", got)
		}
	})
}

// TestMountTools runs the programs issue 17 found failing on the mount,
// on the host: dd conv=fsync, git and sqlite.
func TestMountTools(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "tools")
	m := mountOn(t, srv, nil, b)
	run := func(t *testing.T, dir string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("dd conv=fsync", func(t *testing.T) {
		prereq.Tool(t, "dd", "apt-get install coreutils")
		out, err := run(t, m.path(b), "dd", "if=/dev/zero", "of=dd.bin", "bs=1M", "count=20", "conv=fsync")
		if err != nil {
			t.Fatalf("dd: %v\n%s", err, out)
		}
		if got := getObject(t, srv, b, "dd.bin"); len(got) != 20<<20 {
			t.Errorf("S3 has %d bytes, want %d", len(got), 20<<20)
		}
	})

	t.Run("git init, commit, commit", func(t *testing.T) {
		prereq.Tool(t, "git", "apt-get install git")
		repo := m.path(b, "repo")
		if err := os.Mkdir(repo, 0o755); err != nil {
			t.Fatal(err)
		}
		steps := [][]string{
			{"git", "init", "-q", "-b", "main"},
			{"sh", "-c", "echo one > a.txt"},
			{"git", "add", "a.txt"},
			{"git", "commit", "-q", "-m", "first"},
			// The second commit appends to the reflog (O_APPEND).
			{"sh", "-c", "echo two > b.txt"},
			{"git", "add", "b.txt"},
			{"git", "commit", "-q", "-m", "second"},
			{"git", "fsck", "--strict"},
		}
		for _, s := range steps {
			if out, err := run(t, repo, s[0], s[1:]...); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
			}
		}
		out, err := run(t, repo, "git", "log", "--format=%s")
		if err != nil || out != "second\nfirst\n" {
			t.Errorf("git log: %q, %v", out, err)
		}
	})

	// sqlite writes pages in place and reads them back from the same
	// descriptor: an S3 object cannot do that, so the database cannot be
	// created, and the error says why instead of corrupting anything.
	t.Run("sqlite is refused cleanly", func(t *testing.T) {
		prereq.Tool(t, "sqlite3", "apt-get install sqlite3")
		out, err := run(t, m.path(b), "sqlite3", "db.sqlite", "create table t(x); insert into t values (1); select x from t;")
		t.Logf("sqlite3: %v\n%s", err, out)
		if err == nil && !strings.Contains(out, "Error") {
			t.Fatalf("sqlite3 succeeded on a file system that cannot write in place:\n%s", out)
		}
		// The errno sqlite gets: a read on a descriptor opened for
		// writing, and a write behind the end.
		f, err := os.OpenFile(m.path(b, "rw.bin"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(make([]byte, 100), 0); !errors.Is(err, syscall.ENOTSUP) {
			t.Errorf("read back: %v, want ENOTSUP", err)
		}
		if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.ENOTSUP) {
			t.Errorf("write in place: %v, want ENOTSUP", err)
		}
	})
}
