package entry_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/layer/entry"
)

// childEnv makes the test binary a child that applies a privTest with
// ExecAs, exec'ing a program that prints /proc/self/status.
const childEnv = "TOWERREG_ENTRY_PRIV_TEST"

// privTest is what the child does, passed as JSON in childEnv.
type privTest struct {
	Privileges entry.Privileges
	// Raise first puts CAP_SYS_ADMIN in the inheritable and ambient sets,
	// as a runtime may, so that the drop has something to remove there.
	Raise bool
	// Cat prints /proc/self/status; it may be a setuid copy.
	Cat string
	// StartGroups are the supplementary groups the child has before
	// ExecAs, as a runtime may give root.
	StartGroups []int
}

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}

func child(v string) int {
	var pt privTest
	if err := json.Unmarshal([]byte(v), &pt); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 90
	}
	if pt.StartGroups != nil {
		if err := syscall.Setgroups(pt.StartGroups); err != nil {
			fmt.Fprintln(os.Stderr, "setgroups:", err)
			return 93
		}
	}
	if pt.Raise {
		if err := raiseSysAdmin(); err != nil {
			fmt.Fprintln(os.Stderr, "raise:", err)
			return 91
		}
	}
	err := entry.ExecAs(entry.Command{Path: pt.Cat, Args: []string{pt.Cat, "/proc/self/status"}, Env: []string{}}, pt.Privileges)
	fmt.Fprintln(os.Stderr, err)
	return 92
}

// raiseSysAdmin runs on the thread ExecAs will lock: the main goroutine
// of a fresh process, locked here first so it cannot move.
func raiseSysAdmin() error {
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Inheritable |= 1 << unix.CAP_SYS_ADMIN
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, unix.CAP_SYS_ADMIN, 0, 0)
}

// status is the part of /proc/self/status about credentials.
type status map[string]string

func (s status) has(set string, capability int) bool {
	v, err := strconv.ParseUint(s[set], 16, 64)
	if err != nil {
		panic(fmt.Sprintf("%s: %q", set, s[set]))
	}
	return v&(1<<capability) != 0
}

// runChild runs a child with pt and parses what its program printed.
func runChild(t *testing.T, pt privTest) status {
	t.Helper()
	b, err := json.Marshal(pt)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{childEnv + "=" + string(b)}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderrOf(err))
	}
	s := status{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			s[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return s
}

func stderrOf(err error) string {
	if e, ok := err.(*exec.ExitError); ok {
		return string(e.Stderr)
	}
	return ""
}

// needRoot fails or skips unless the test runs as root with CAP_SYS_ADMIN
// and CAP_SETPCAP, what the entry has in a container run for FUSE.
func needRoot(t *testing.T) {
	t.Helper()
	prereq.Root(t, "switching users and dropping capabilities")
	for _, c := range []int{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP} {
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil || in != 1 {
			prereq.Missing(t, fmt.Sprintf("capability %d is not in the bounding set", c), "run the tests as root with the default capabilities")
		}
	}
}

// TestExecAs runs the image's program (cat /proc/self/status) after
// ExecAs and checks its credentials: the user, the groups, and that
// CAP_SYS_ADMIN is in none of its sets when dropped, while the other
// capabilities stay.
func TestExecAs(t *testing.T) {
	needRoot(t)
	cat, err := exec.LookPath("cat")
	if err != nil {
		prereq.Missing(t, "cat not on PATH", "apt-get install coreutils")
	}
	app := &entry.User{UID: 1000, GID: 1000, Groups: []int{2000, 3000}, Home: "/home/app"}
	bare := &entry.User{UID: 1000, GID: 0, Home: "/"}
	sets := []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
	tests := []struct {
		name       string
		pt         privTest
		wantUID    string
		wantGID    string
		wantGroups string
		// wantAdmin are the sets that must hold CAP_SYS_ADMIN; the
		// others must not.
		wantAdmin []string
		// wantChown: the program still has CAP_CHOWN (root keeps its
		// other capabilities).
		wantChown bool
	}{
		{name: "nothing to do: root, all kept", pt: privTest{Raise: true, StartGroups: []int{0, 4242}},
			wantUID: "0 0 0 0", wantGID: "0 0 0 0", wantGroups: "0 4242", wantAdmin: sets, wantChown: true},
		{name: "root, drop", pt: privTest{Raise: true, Privileges: entry.Privileges{DropSysAdmin: true}},
			wantUID: "0 0 0 0", wantGID: "0 0 0 0", wantChown: true},
		{name: "user with groups, drop", pt: privTest{Raise: true, Privileges: entry.Privileges{User: app, DropSysAdmin: true}},
			wantUID: "1000 1000 1000 1000", wantGID: "1000 1000 1000 1000", wantGroups: "2000 3000"},
		{name: "user without groups: root's are cleared", pt: privTest{StartGroups: []int{0, 4242}, Privileges: entry.Privileges{User: bare, DropSysAdmin: true}},
			wantUID: "1000 1000 1000 1000", wantGID: "0 0 0 0"},
		// Without a mount the bounding set is the runtime's, as without
		// the proxy; leaving uid 0 still empties the other sets.
		{name: "user, no drop", pt: privTest{Raise: true, Privileges: entry.Privileges{User: app}},
			wantUID: "1000 1000 1000 1000", wantGID: "1000 1000 1000 1000", wantGroups: "2000 3000",
			wantAdmin: []string{"CapInh", "CapBnd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.pt.Cat = cat
			s := runChild(t, tt.pt)
			if s["Uid"] != tt.wantUID || s["Gid"] != tt.wantGID || s["Groups"] != tt.wantGroups {
				t.Errorf("Uid %q Gid %q Groups %q; want %q %q %q", s["Uid"], s["Gid"], s["Groups"], tt.wantUID, tt.wantGID, tt.wantGroups)
			}
			for _, set := range sets {
				want := false
				for _, w := range tt.wantAdmin {
					want = want || w == set
				}
				if got := s.has(set, unix.CAP_SYS_ADMIN); got != want {
					t.Errorf("CAP_SYS_ADMIN in %s (%s): %v, want %v", set, s[set], got, want)
				}
			}
			if got := s.has("CapEff", unix.CAP_CHOWN); got != tt.wantChown {
				t.Errorf("CAP_CHOWN in CapEff (%s): %v, want %v", s["CapEff"], got, tt.wantChown)
			}
			if s["NoNewPrivs"] != "0" {
				t.Errorf("NoNewPrivs %q: setuid programs of the image would stop working", s["NoNewPrivs"])
			}
		})
	}
}

// TestExecAsSetuid: after the switch and the drop, a setuid-root program
// of the image still becomes root (the entry sets no no_new_privs), but
// without CAP_SYS_ADMIN: the bounding set masks what exec grants it.
func TestExecAsSetuid(t *testing.T) {
	needRoot(t)
	cat, err := exec.LookPath("cat")
	if err != nil {
		prereq.Missing(t, "cat not on PATH", "apt-get install coreutils")
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	suid := filepath.Join(dir, "cat")
	copyFile(t, cat, suid)
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	user := &entry.User{UID: 1000, GID: 1000, Home: "/"}
	s := runChild(t, privTest{Cat: suid, Privileges: entry.Privileges{User: user, DropSysAdmin: true}})
	if s["Uid"] != "1000 0 0 0" {
		t.Fatalf("Uid %q: the setuid program did not become root (is %s on a nosuid mount?)", s["Uid"], dir)
	}
	if !s.has("CapEff", unix.CAP_CHOWN) {
		t.Errorf("CapEff %s: a setuid-root program should have root's capabilities", s["CapEff"])
	}
	for _, set := range []string{"CapPrm", "CapEff", "CapBnd"} {
		if s.has(set, unix.CAP_SYS_ADMIN) {
			t.Errorf("CAP_SYS_ADMIN in %s (%s) of a setuid-root program", set, s[set])
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
