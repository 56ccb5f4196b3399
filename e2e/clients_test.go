package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------------------
// Client wrappers

// runCmd runs a client command with a timeout and returns its stdout and
// stderr. Every command and its duration goes to the test log.
func runCmd(tb testing.TB, env []string, bin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	return runCmdIn(tb, env, "", bin, args...)
}

// runCmdStdin is runCmd with stdin, for secrets that must not go on a
// command line.
func runCmdStdin(tb testing.TB, stdin string, bin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	return runCmdIn(tb, os.Environ(), stdin, bin, args...)
}

// mustRunStdin is runCmdStdin that fails the test on error.
func mustRunStdin(tb testing.TB, stdin string, bin string, args ...string) string {
	tb.Helper()
	out, errOut, err := runCmdStdin(tb, stdin, bin, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func runCmdIn(tb testing.TB, env []string, stdin string, bin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second // a child holding the pipes open must not hang us
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err = cmd.Run()
	tb.Logf("$ %s %s  (%v)", filepath.Base(bin), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		err = fmt.Errorf("%w after %v", ctx.Err(), commandTimeout)
	}
	return o.String(), e.String(), err
}

// mustRun is runCmd that fails the test on error, with the output.
func mustRun(tb testing.TB, env []string, bin string, args ...string) string {
	tb.Helper()
	out, errOut, err := runCmd(tb, env, bin, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// skopeo runs skopeo over plain HTTP without a signature policy: the tests
// check digests, not signatures, and must not depend on the host's
// /etc/containers/policy.json.
type skopeo struct{ bin string }

func newSkopeo(tb testing.TB) *skopeo { tb.Helper(); return &skopeo{bin: need(tb, "skopeo")} }

// copyToOCI copies docker://ref into a new OCI layout and returns its
// directory. all copies every image of a list. skopeo checks every blob
// against its digest on the way.
func (s *skopeo) copyToOCI(tb testing.TB, ref string, all bool, extra ...string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "oci")
	args := []string{"--insecure-policy", "copy", "--retry-times=0",
		"--src-tls-verify=false", "--dest-tls-verify=false"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, extra...)
	args = append(args, "docker://"+ref, "oci:"+dir)
	mustRun(tb, os.Environ(), s.bin, args...)
	return dir
}

// inspect returns `skopeo inspect` of docker://ref, raw (the manifest) or
// not (skopeo's summary).
func (s *skopeo) inspect(tb testing.TB, ref string, raw bool) []byte {
	tb.Helper()
	args := []string{"--insecure-policy", "inspect", "--retry-times=0", "--tls-verify=false"}
	if raw {
		args = append(args, "--raw")
	}
	args = append(args, "docker://"+ref)
	return []byte(mustRun(tb, os.Environ(), s.bin, args...))
}

// crane is go-containerregistry's CLI, the version `make tools` pins.
type crane struct{ bin string }

func newCrane(tb testing.TB) *crane { tb.Helper(); return &crane{bin: need(tb, "crane")} }

// validate runs `crane validate --remote`, which fetches the manifest (every
// child of an index) and every blob and checks their digests and sizes.
// --insecure allows plain HTTP; crane would use it for 127.0.0.1 anyway.
func (c *crane) validate(tb testing.TB, ref string) string {
	tb.Helper()
	return mustRun(tb, os.Environ(), c.bin, "validate", "--insecure", "--remote", ref)
}

// podman is rootful podman with its whole state in the test's temp dir.
//
// Why each setting (found on Debian 12 in a Firecracker VM, kernel 6.18,
// hybrid cgroups: v1 controllers plus an empty cgroup2 at
// /sys/fs/cgroup/unified, no systemd, no journald):
//   - runtime "runc": crun 1.8 refuses hybrid cgroups ("cgroups in hybrid
//     mode not supported, drop all controllers from cgroupv2"), and podman
//     picks crun over runc whenever crun is installed.
//   - default_ulimits at most our own hard limits: rootful podman raises
//     RLIMIT_NOFILE to 1048576 by default, which needs CAP_SYS_RESOURCE; a
//     sandbox without it fails every container with "error setting rlimit
//     type 7: operation not permitted".
//   - cgroup_manager "cgroupfs", events_logger "file", log_driver
//     "k8s-file": there is no systemd or journald to talk to (podman falls
//     back by itself, but saying so keeps the logs quiet and the behaviour
//     the same on a machine that has them).
//   - netns "host": pulls are done by podman, not the container, so the
//     container needs no network; host networking leaves no bridge or
//     firewall rules behind.
//   - tmp_dir, network_config_dir, storage.conf, registries.conf in the
//     temp dir: nothing is shared with the host's podman (/run/libpod,
//     /etc/containers/networks, /var/lib/containers).
type podman struct {
	bin  string
	dir  string
	env  []string
	glob []string // global flags: the store
}

const containersConf = `[containers]
netns = "host"
log_driver = "k8s-file"
default_ulimits = [%q, %q]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %q

[network]
network_config_dir = %q
`

const storageConf = `[storage]
driver = "overlay"
graphroot = %q
runroot = %q
`

// newPodman sets up a podman store for this test; cleanup resets it.
func newPodman(tb testing.TB) *podman {
	tb.Helper()
	bin := need(tb, "podman")
	need(tb, "runc")
	needRoot(tb)
	dir := tb.TempDir()
	p := &podman{bin: bin, dir: dir}
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "runroot")
	if len(runroot) > 50 {
		// podman refuses a runroot longer than 50 characters, which a
		// subtest's TempDir soon is: a short one of our own, removed
		// after the reset below.
		short, err := os.MkdirTemp("", "pm-")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(short) })
		runroot = filepath.Join(short, "runroot")
	}
	tmp, nets := filepath.Join(dir, "tmp"), filepath.Join(dir, "networks")
	for _, d := range []string{root, runroot, tmp, nets} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	nofile, nproc := rlimitHard(unix.RLIMIT_NOFILE, 20000), rlimitHard(unix.RLIMIT_NPROC, 32768)
	files := map[string]string{
		"containers.conf": fmt.Sprintf(containersConf,
			fmt.Sprintf("nofile=%d:%d", nofile, nofile), fmt.Sprintf("nproc=%d:%d", nproc, nproc), tmp, nets),
		"storage.conf":    fmt.Sprintf(storageConf, root, runroot),
		"registries.conf": "unqualified-search-registries = []\n",
	}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	p.env = append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
	)
	p.glob = []string{"--root", root, "--runroot", runroot}
	tb.Cleanup(func() { p.reset(tb) })
	return p
}

// rlimitHard is min(our hard limit, want): the most a container may get
// without CAP_SYS_RESOURCE.
func rlimitHard(resource int, want uint64) uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(resource, &r); err != nil || r.Max >= want {
		return want
	}
	return r.Max
}

func (p *podman) args(args ...string) []string { return append(slices.Clone(p.glob), args...) }

// tryRun runs `podman run --rm` of image with args (none: the image's own
// command) and returns the container's stdout.
func (p *podman) tryRun(tb testing.TB, image string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	a := p.args("run", "--rm", "--quiet", "--tls-verify=false", image)
	return runCmd(tb, p.env, p.bin, append(a, args...)...)
}

// run is tryRun that fails the test on error.
func (p *podman) run(tb testing.TB, image string, args ...string) string {
	tb.Helper()
	out, errOut, err := p.tryRun(tb, image, args...)
	if err != nil {
		tb.Fatalf("podman run %s %s: %v\nstdout:\n%s\nstderr:\n%s", image, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// reset removes everything podman made, then checks that no mount is left
// under the store (it would make removing the temp dir fail).
func (p *podman) reset(tb testing.TB) {
	tb.Helper()
	// conmon starts `podman container cleanup` on its own after a
	// container exits, and on a loaded machine that may still be writing
	// to the tmp dir that reset removes ("directory not empty"): try
	// again, a few times, before calling it a failure.
	for try := 1; ; try++ {
		out, errOut, err := runCmd(tb, p.env, p.bin, p.args("system", "reset", "--force")...)
		if err == nil {
			break
		}
		if try == 3 {
			tb.Errorf("podman system reset, %d tries: %v\n%s%s", try, err, out, errOut)
			break
		}
		time.Sleep(time.Second)
	}
	for _, m := range mountsUnder(p.dir) {
		tb.Errorf("podman left %s mounted; unmounting it", m)
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// mountsUnder lists mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ms = append(ms, f[4])
		}
	}
	slices.Reverse(ms)
	return ms
}
