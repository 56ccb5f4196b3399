package fusion

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/internal/s3test"
)

// Users for the permission tests: the owner the entry names, and another
// user of the same container.
const (
	ownerUID, ownerGID = 1000, 1000
	otherUID, otherGID = 2000, 2000
)

// openToAll lets other users reach dir: t.TempDir makes its directories
// 0700, which would deny them before the mount has a say.
func openToAll(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// as runs argv as uid:gid with no supplementary groups and reports its
// combined output and whether it succeeded.
func as(t *testing.T, uid, gid uint32, argv ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%q: %v", argv, err)
		}
	}
	return strings.TrimSpace(string(out)), err == nil
}

// TestMountOwnerAndPermissions: every node belongs to OwnerEnv's user, and
// the kernel enforces the mode bits (default_permissions): that user reads,
// lists and writes; another user reads and lists but cannot change
// anything, which without default_permissions it could.
func TestMountOwnerAndPermissions(t *testing.T) {
	s3test.NeedFUSE(t) // root, which also switches users
	sh := prereq.Tool(t, "sh", "apt-get install dash")
	srv := s3test.Start(t)
	b := srv.Bucket(t, "owned")
	put(t, srv, b, "dir/data.txt", []byte("data\n"))
	m := mountOn(t, srv, map[string]string{OwnerEnv: "1000:1000"}, b)
	openToAll(t, filepath.Dir(m.dir))

	for _, p := range []string{m.dir, m.path(b), m.path(b, "dir"), m.path(b, "dir", "data.txt")} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != ownerUID || st.Gid != ownerGID {
			t.Errorf("%s belongs to %d:%d, want %d:%d", p, st.Uid, st.Gid, ownerUID, ownerGID)
		}
	}

	file, dir := m.path(b, "dir", "data.txt"), m.path(b, "dir")
	tests := []struct {
		name     string
		uid, gid uint32
		script   string
		wantOK   bool
		wantOut  string
	}{
		{"owner reads", ownerUID, ownerGID, "cat " + file, true, "data"},
		{"owner lists", ownerUID, ownerGID, "ls " + dir, true, "data.txt"},
		{"owner writes", ownerUID, ownerGID, "echo new > " + dir + "/new.txt && cat " + dir + "/new.txt", true, "new"},
		{"owner makes a directory", ownerUID, ownerGID, "mkdir " + dir + "/sub", true, ""},
		{"other reads", otherUID, otherGID, "cat " + file, true, "data"},
		{"other lists", otherUID, otherGID, "ls " + dir, true, "data.txt"},
		{"other cannot write", otherUID, otherGID, "echo bad > " + dir + "/bad.txt", false, "Permission denied"},
		{"other cannot truncate", otherUID, otherGID, ": > " + file, false, "Permission denied"},
		{"other cannot remove", otherUID, otherGID, "rm -f " + file, false, "Permission denied"},
		{"other cannot make a directory", otherUID, otherGID, "mkdir " + dir + "/other", false, "Permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := as(t, tt.uid, tt.gid, sh, "-c", tt.script)
			if ok != tt.wantOK || !strings.Contains(out, tt.wantOut) {
				t.Errorf("%s as %d: ok=%v, output %q; want ok=%v and %q", tt.script, tt.uid, ok, out, tt.wantOK, tt.wantOut)
			}
		})
	}
	// What the other user tried left no trace in S3.
	if got := getObject(t, srv, b, "dir/data.txt"); string(got) != "data\n" {
		t.Errorf("data.txt is now %q", got)
	}
	for obj := range srv.Client.ListObjects(t.Context(), b, minio.ListObjectsOptions{Recursive: true}) {
		if slices.Contains([]string{"dir/bad.txt", "dir/other/"}, obj.Key) {
			t.Errorf("another user created %s", obj.Key)
		}
	}
}

func TestWithOwner(t *testing.T) {
	got := WithOwner([]string{"A=1", OwnerEnv + "=0:0", "B=2", OwnerEnv + "=5:5"}, 1000, 2000)
	want := []string{"A=1", "B=2", OwnerEnv + "=1000:2000"}
	if !slices.Equal(got, want) {
		t.Errorf("WithOwner = %q, want %q", got, want)
	}
}

func TestFromEnvOwner(t *testing.T) {
	base := map[string]string{BucketsEnv: "aaa"}
	for _, tt := range []struct {
		value            string
		wantUID, wantGID uint32
		wantErr          bool
	}{
		{"", uint32(os.Geteuid()), uint32(os.Getegid()), false},
		{"1000:2000", 1000, 2000, false},
		{"0:0", 0, 0, false},
		{"1000", 0, 0, true},
		{"app:app", 0, 0, true},
		{"-1:0", 0, 0, true},
		{"4294967296:0", 0, 0, true},
		{"1000:2000:3", 0, 0, true},
	} {
		env := map[string]string{OwnerEnv: tt.value}
		for k, v := range base {
			env[k] = v
		}
		c, err := FromEnv(getenv(env))
		switch {
		case tt.wantErr && (err == nil || !strings.Contains(err.Error(), OwnerEnv)):
			t.Errorf("%s=%q: %+v, %v; want an error naming %s", OwnerEnv, tt.value, c, err, OwnerEnv)
		case !tt.wantErr && (err != nil || c.UID != tt.wantUID || c.GID != tt.wantGID):
			t.Errorf("%s=%q: %d:%d, %v; want %d:%d", OwnerEnv, tt.value, c.UID, c.GID, err, tt.wantUID, tt.wantGID)
		}
	}
}
