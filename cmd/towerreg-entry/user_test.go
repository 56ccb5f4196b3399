package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/layer/entry"
)

// probe is a shell script that prints who it runs as, whether it has
// CAP_SYS_ADMIN (bit 21) in its bounding and effective sets, and what it sees of
// the entry's variables.
const probe = `echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
for set in CapBnd CapEff; do
  v=$(sed -n "s/^$set:[[:space:]]*//p" /proc/self/status)
  echo "$set admin=$(( (0x$v >> 21) & 1 ))"
done
echo "user var=${TOWERREG_USER-unset} home=$HOME"
`

// runEntry runs the entry with env and args, and returns its stdout,
// stderr and exit status.
func runEntry(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := hostBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// needUserSwitch fails or skips unless the entry can switch users here.
func needUserSwitch(t *testing.T) string {
	t.Helper()
	prereq.Root(t, "switching users")
	if _, err := user.LookupId("4242"); err == nil {
		t.Fatal("uid 4242, which the tests take to be unknown here, is in /etc/passwd")
	}
	return prereq.Tool(t, "sh", "apt-get install dash")
}

// TestUserSwitch runs the entry as root, as the rewritten config makes
// the runtime start it, and checks who the program runs as and what it
// keeps of CAP_SYS_ADMIN without a mount.
func TestUserSwitch(t *testing.T) {
	sh := needUserSwitch(t)
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", entry.EntrypointEnv + `=["` + sh + `","-c"]`}
	tests := []struct {
		name     string
		env      []string
		want     []string // lines of the probe's output
		wantCode int
		wantErr  string
	}{
		{name: "image USER uid:gid", env: []string{entry.UserEnv + "=4242:4242"},
			// No mount: the bounding set is what the runtime gave.
			want: []string{"uid=4242 gid=4242 groups=4242", "CapBnd admin=1", "CapEff admin=0", "user var=unset home=/"}},
		{name: "no USER: root, as before", env: nil,
			want: []string{"uid=0 gid=0 groups=0", "CapBnd admin=1", "CapEff admin=1", "user var=unset home=/root"}},
		{name: "unknown user", env: []string{entry.UserEnv + "=ghost-user"}, wantCode: 126,
			wantErr: `towerreg-entry: TOWERREG_USER="ghost-user": unable to find user ghost-user: no matching entries in passwd file` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runEntry(t, append(base, tt.env...), probe)
			if code != tt.wantCode || errOut != tt.wantErr {
				t.Fatalf("exit %d, stderr %q; want %d, %q\nstdout:\n%s", code, errOut, tt.wantCode, tt.wantErr, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestUserSwitchFusion: with a mount, the program runs as the image's
// user without CAP_SYS_ADMIN in any set, and reads, lists and writes the
// mount, whose files are that user's.
func TestUserSwitchFusion(t *testing.T) {
	s3test.NeedFUSE(t)
	sh := needUserSwitch(t)
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "owned")
	srv.WriteObject(t, bucket, "greeting.txt", []byte("hi from S3\n"))
	dir := t.TempDir()
	// t.TempDir's 0700 would stop the user before the mount has a say.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mnt := filepath.Join(dir, "s3")
	script := probe + `cat MNT/owned/greeting.txt
ls -ln MNT/owned | sed -n 's/^-[^ ]* *[0-9]* *\([0-9]*\) *\([0-9]*\) .* greeting.txt$/owner=\1:\2/p'
echo written > MNT/owned/out.txt && echo wrote
`
	script = strings.ReplaceAll(script, "MNT", mnt)
	for _, tt := range []struct {
		name string
		env  []string
		want []string
	}{
		{name: "image USER", env: []string{entry.UserEnv + "=4242:4242"},
			want: []string{"uid=4242 gid=4242 groups=4242", "CapBnd admin=0", "CapEff admin=0", "hi from S3", "owner=4242:4242", "wrote"}},
		{name: "no USER: root without CAP_SYS_ADMIN", env: nil,
			want: []string{"uid=0 gid=0 groups=0", "CapBnd admin=0", "CapEff admin=0", "hi from S3", "owner=0:0", "wrote"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := append(append(os.Environ(), srv.Env(bucket)...), "NXF_FUSION_MOUNT="+mnt, entry.EntrypointEnv+`=["`+sh+`","-c"]`)
			out, errOut, code := runEntry(t, append(env, tt.env...), script)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			waitUnmounted(t, mnt)
		})
	}
}

// waitUnmounted waits for the server to notice its program ended.
func waitUnmounted(t *testing.T, mnt string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for mounted(t, mnt) {
		if time.Now().After(deadline) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Fatalf("%s still mounted 5s after the program ended", mnt)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
