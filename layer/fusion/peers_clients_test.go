package fusion

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// peersEnv turns BenchmarkPeers on. `make bench-peers` sets it after it
// has installed the peers; `make bench` leaves it unset, as the peers
// take minutes and a root apt-get to get.
const peersEnv = "TOWERREG_BENCH_PEERS"

// peerTools are the programs the peers need, with the Debian package of
// each, for the message when one is missing. rclone mounts through
// fusermount (fuse3); s3fs and the entry call mount(2) themselves.
var peerTools = []struct{ name, pkg string }{
	{"s3fs", "s3fs"},
	{"rclone", "rclone"},
	{"fusermount", "fuse3"},
	{"sleep", "coreutils"},
}

// needPeers skips tb unless peersEnv is set, and then fails it, never
// skips it, for anything the comparison lacks: a comparison missing a
// peer would read as one the others won.
func needPeers(tb testing.TB) map[string]string {
	tb.Helper()
	if os.Getenv(peersEnv) == "" {
		tb.Skipf("SKIPPED: the comparison with s3fs and rclone runs with %s=1; run make bench-peers", peersEnv)
	}
	if os.Geteuid() != 0 {
		tb.Fatalf("%s: the peers mount FUSE file systems and drop the page cache: run as root", peersEnv)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		tb.Fatalf("%s: no /dev/fuse (%v): modprobe fuse", peersEnv, err)
	}
	paths := map[string]string{}
	for _, t := range peerTools {
		p, err := exec.LookPath(t.name)
		if err != nil {
			tb.Fatalf("%s: %s is not installed: apt-get install %s (make bench-peers does)", peersEnv, t.name, t.pkg)
		}
		paths[t.name] = p
	}
	return paths
}

// peerSetup is what every mount of a run shares.
type peerSetup struct {
	srv    *s3test.Server
	bucket string
	tools  map[string]string
	entry  string // the entry binary, built from this tree
	s3fsPw string // s3fs's passwd file
	rclone string // rclone's config file
}

// newPeerSetup builds the entry and writes the peers' credentials files.
func newPeerSetup(tb testing.TB, srv *s3test.Server, bucket string, tools map[string]string) *peerSetup {
	tb.Helper()
	dir := tb.TempDir()
	s := &peerSetup{srv: srv, bucket: bucket, tools: tools,
		entry:  buildEntry(tb, dir),
		s3fsPw: filepath.Join(dir, "s3fs.passwd"),
		rclone: filepath.Join(dir, "rclone.conf"),
	}
	// s3fs refuses a passwd file that others can read.
	if err := os.WriteFile(s.s3fsPw, []byte(s3test.AccessKey+":"+s3test.SecretKey+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf("[peers]\ntype = s3\nprovider = Other\nenv_auth = false\naccess_key_id = %s\nsecret_access_key = %s\nendpoint = %s\nregion = us-east-1\n",
		s3test.AccessKey, s3test.SecretKey, srv.URL)
	if err := os.WriteFile(s.rclone, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	return s
}

// buildEntry builds the entry as the Makefile does, so the run measures
// the client of this tree, not a stale build in the default layer.
func buildEntry(tb testing.TB, dir string) string {
	tb.Helper()
	root, err := prereq.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, "entry")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/towerreg-entry")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/towerreg-entry: %v\n%s", err, b)
	}
	return out
}

// peer is one client that mounts the bucket, run as the user would run
// it: its own process, its defaults, except where noted.
type peer struct {
	name string
	// command mounts the bucket at dir; scratch is a fresh directory for
	// its caches.
	command func(s *peerSetup, dir, scratch string) *exec.Cmd
	// inBucket is where the bucket's keys appear under the mount point.
	inBucket func(s *peerSetup, dir string) string
	// stays: the process keeps running after the unmount (the entry's
	// program) and is killed then; the others leave by themselves.
	stays bool
}

// bucketAtRoot is where s3fs and rclone put the bucket: at the mount
// point itself.
func bucketAtRoot(_ *peerSetup, dir string) string { return dir }

var peers = []peer{
	{
		name: "tower-reg",
		// The entry mounts, waits for the mount, then execs the program
		// (sleep, standing in for the container's): the way a container
		// gets it. Its server leaves when the mount does.
		command: func(s *peerSetup, dir, _ string) *exec.Cmd {
			cmd := exec.Command(s.entry, s.tools["sleep"], "infinity")
			cmd.Env = append(append(peerEnviron(), s.srv.Env(s.bucket)...), MountEnv+"="+dir)
			return cmd
		},
		inBucket: func(s *peerSetup, dir string) string { return filepath.Join(dir, s.bucket) },
		stays:    true,
	},
	{
		name: "s3fs",
		// -f keeps it a child of the benchmark (it forks away otherwise),
		// which changes nothing in how it serves.
		command: func(s *peerSetup, dir, _ string) *exec.Cmd {
			return exec.Command(s.tools["s3fs"], s.bucket, dir, "-f",
				"-o", "passwd_file="+s.s3fsPw+",url="+s.srv.URL+",use_path_request_style")
		},
		inBucket: bucketAtRoot,
	},
	rclonePeer("off"),
	rclonePeer("full"),
}

// rclonePeer is rclone mount with --vfs-cache-mode mode, its cache in
// the measurement's scratch directory so that every mount starts cold.
func rclonePeer(mode string) peer {
	return peer{
		name: "rclone-" + mode,
		command: func(s *peerSetup, dir, scratch string) *exec.Cmd {
			return exec.Command(s.tools["rclone"], "--config", s.rclone, "mount", "peers:"+s.bucket, dir,
				"--vfs-cache-mode", mode, "--cache-dir", scratch)
		},
		inBucket: bucketAtRoot,
	}
}

// peerEnviron is the benchmark's environment without the AWS variables:
// the peers read AWS_CA_BUNDLE, AWS_PROFILE and others, which would point
// them elsewhere than their configuration (rclone fails on an
// AWS_CA_BUNDLE with a plain-HTTP endpoint).
func peerEnviron() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
}

// peerMount is one running mount of a peer.
type peerMount struct {
	name    string
	stays   bool
	base    string // the mount point and the scratch directory
	dir     string // the mount point
	bucket  string // where the keys are
	cmd     *exec.Cmd
	out     *syncbuf.Buffer
	exited  chan struct{}
	waitErr error
}

// mount starts p on a fresh mount point and returns once the kernel has
// the mount, with the time that took from the start of the process.
// Close it once measured, so that mounts and caches do not pile up over a
// run; tb's cleanup closes it too, after a failure.
func (p peer) mount(tb testing.TB, s *peerSetup) (*peerMount, time.Duration) {
	tb.Helper()
	base, err := os.MkdirTemp("", "towerreg-peer-")
	if err != nil {
		tb.Fatal(err)
	}
	dir, scratch := filepath.Join(base, "mnt"), filepath.Join(base, "scratch")
	for _, d := range []string{dir, scratch} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	m := &peerMount{name: p.name, stays: p.stays, base: base, dir: dir, bucket: p.inBucket(s, dir), cmd: p.command(s, dir, scratch),
		out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	if m.cmd.Env == nil {
		m.cmd.Env = peerEnviron()
	}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := m.cmd.Start(); err != nil {
		os.RemoveAll(base)
		tb.Fatalf("%s: %v", p.name, err)
	}
	go func() { m.waitErr = m.cmd.Wait(); close(m.exited) }()
	tb.Cleanup(func() { m.close(tb) })
	deadline := time.Now().Add(30 * time.Second)
	for !isMountPoint(tb, dir) {
		select {
		case <-m.exited:
			tb.Fatalf("%s exited (%v) before it mounted:\n%s", p.name, m.waitErr, m.out)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not mounted after 30s:\n%s", p.name, m.out)
		}
	}
	return m, time.Since(start)
}

// close unmounts (lazily if the mount is busy), waits for the client to
// leave, killing it after 10s, and removes its directories, caches
// included, so that a run does not fill the disk. It may be called again.
func (m *peerMount) close(tb testing.TB) {
	tb.Helper()
	if isMountPoint(tb, m.dir) {
		if err := unmountDir(m.dir); err != nil {
			tb.Errorf("%s: %v", m.name, err)
		}
	}
	if m.stays {
		_ = m.cmd.Process.Kill()
	}
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		tb.Errorf("%s still running 10s after the unmount; killed it:\n%s", m.name, m.out)
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	if !isMountPoint(tb, m.dir) {
		if err := os.RemoveAll(m.base); err != nil {
			tb.Errorf("%s: %v", m.name, err)
		}
	}
}

// unmountDir is umount, then umount -l if something still holds the mount.
func unmountDir(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is a mount point, from the kernel's
// list rather than a stat, which would block on a FUSE server that is not
// serving yet.
func isMountPoint(tb testing.TB, dir string) bool {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// cacheDropper drops the page, dentry and inode caches before each
// measurement where the kernel lets it, and says once where it does not.
type cacheDropper struct {
	failed error
}

func (c *cacheDropper) drop(ctx context.Context, tb testing.TB) {
	tb.Helper()
	if c.failed != nil || ctx.Err() != nil {
		return
	}
	// Dirty pages are not dropped: write them out first.
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		c.failed = err
		tb.Logf("NOTE: page caches are NOT dropped between measurements: %v", err)
	}
}

// state says, for the report, whether the caches were dropped.
func (c *cacheDropper) state() string {
	if c.failed != nil {
		return fmt.Sprintf("NOT dropped (%v)", c.failed)
	}
	return "dropped before every measurement"
}
