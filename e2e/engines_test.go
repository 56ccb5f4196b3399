package e2e

// The container engines the tests start themselves: containerd (driven
// with ctr) and dockerd on top of it. Each has every directory, socket and
// pid file in a temp dir of its own; nothing is a system service, and
// nothing is shared with an engine the machine may run.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// engineStartTimeout bounds an engine's start. dockerd starts in about 2 s
// on an idle 2-core machine; the other tests running beside it can make
// that many times longer, and a slow start is no failure.
const engineStartTimeout = 2 * time.Minute

// engineStopTimeout bounds an engine's clean exit after SIGTERM: dockerd
// waits for its containers and for containerd.
const engineStopTimeout = time.Minute

// shortTempDir is a new directory under os.TempDir, removed at cleanup.
// A unix socket's path is at most 107 bytes, which a subtest's TempDir
// plus an engine's socket names soon exceeds.
func shortTempDir(tb testing.TB, prefix string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// startEngine starts bin in a process group of its own, its output in
// dir/NAME.log, and waits until ready answers nil. Cleanup stops it with
// SIGTERM, kills what is left of its group, and unmounts whatever it left
// mounted under dir, which is a failure: a clean exit leaves nothing.
func startEngine(tb testing.TB, name, dir string, env []string, ready func(context.Context) error, bin string, args ...string) *process {
	tb.Helper()
	p, err := startProcessGroup(name, filepath.Join(dir, name+".log"), env, bin, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stopEngine(tb, p, dir) })
	start := time.Now()
	if err := waitEngine(p, ready); err != nil {
		tb.Fatalf("%v\n%s output (%s):\n%s", err, name, p.logPath, p.logTail())
	}
	tb.Logf("%s ready in %v", name, time.Since(start).Round(time.Millisecond))
	return p
}

// waitEngine polls ready until it answers nil, the process exits or
// engineStartTimeout passes.
func waitEngine(p *process, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), engineStartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		tryCtx, tryCancel := context.WithTimeout(ctx, 5*time.Second)
		last := ready(tryCtx)
		tryCancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s %w (%v); last check: %v", p.name, errExited, p.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v", p.name, engineStartTimeout, last)
		case <-tick.C:
		}
	}
}

func stopEngine(tb testing.TB, p *process, dir string) {
	tb.Helper()
	select {
	case <-p.exited:
		tb.Errorf("%s exited during the test (%v)", p.name, p.waitErr)
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.waitErr != nil {
				tb.Errorf("%s did not exit cleanly after SIGTERM: %v", p.name, p.waitErr)
			}
		case <-time.After(engineStopTimeout):
			tb.Errorf("%s did not exit %v after SIGTERM; killing its process group", p.name, engineStopTimeout)
		}
	}
	p.killGroup()
	<-p.exited
	for _, m := range mountsUnder(dir) {
		tb.Errorf("%s left %s mounted; unmounting it", p.name, m)
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if tb.Failed() {
		tb.Logf("%s output (%s):\n%s", p.name, p.logPath, p.logTail())
	}
}

// dialUnix reports whether a unix socket accepts connections.
func dialUnix(ctx context.Context, path string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	return c.Close()
}

// ---------------------------------------------------------------------------
// containerd

// containerd is a containerd of the test's own, driven with ctr.
//
// Why each setting:
//   - root, state, the gRPC and ttrpc sockets in the temp dir, the debug
//     socket and metrics off: nothing shared with /var/lib/containerd or
//     /run/containerd. Only the runc shim's own sockets go where the shim
//     puts them (/run/containerd/s/<hash of our address>), and it removes
//     them when its container ends.
//   - the opt plugin's path in the temp dir: it creates /opt/containerd
//     otherwise.
//   - the CRI plugin disabled: no Kubernetes here, and it wants CNI.
type containerd struct {
	Addr string // the gRPC socket
	ctr  string
	env  []string
	ids  atomic.Int64 // container IDs
}

const containerdConfig = `version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`

// startContainerd starts a containerd and waits until ctr reaches it.
func startContainerd(tb testing.TB) *containerd {
	tb.Helper()
	bin := need(tb, "containerd")
	ctr := need(tb, "ctr")
	need(tb, "containerd-shim-runc-v2")
	need(tb, "runc")
	needRoot(tb)
	dir := shortTempDir(tb, "ctd-")
	c := &containerd{Addr: filepath.Join(dir, "containerd.sock"), ctr: ctr, env: os.Environ()}
	cfg := filepath.Join(dir, "config.toml")
	data := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"),
		c.Addr, c.Addr+".ttrpc", filepath.Join(dir, "opt"))
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
	startEngine(tb, "containerd", dir, c.env, func(ctx context.Context) error {
		return dialUnix(ctx, c.Addr)
	}, bin, "--config", cfg)
	c.run(tb, "version")
	return c
}

// run runs ctr against this containerd and fails the test on error.
func (c *containerd) run(tb testing.TB, args ...string) string {
	tb.Helper()
	return mustRun(tb, c.env, c.ctr, append([]string{"--address", c.Addr}, args...)...)
}

// pull pulls ref over plain HTTP (every registry here is on loopback):
// ctr, unlike Docker, never falls back to HTTP by itself.
func (c *containerd) pull(tb testing.TB, ref string, extra ...string) {
	tb.Helper()
	c.run(tb, append(append([]string{"images", "pull", "--plain-http"}, extra...), ref)...)
}

// runImage runs `ctr run --rm` of a pulled image and returns its stdout.
// As ctr does, args (if any) replace the image's entrypoint and command
// both. The container gets a network namespace with loopback only.
func (c *containerd) runImage(tb testing.TB, ref string, args ...string) string {
	tb.Helper()
	id := fmt.Sprintf("e2e-%d", c.ids.Add(1))
	return c.run(tb, append([]string{"run", "--rm", ref, id}, args...)...)
}

// content returns a blob or manifest of containerd's content store.
func (c *containerd) content(tb testing.TB, digest string) []byte {
	tb.Helper()
	return []byte(c.run(tb, "content", "get", digest))
}

// ---------------------------------------------------------------------------
// dockerd

// dockerd is a Docker engine of the test's own, on a containerd of its
// own (startContainerd), with the docker CLI pointed at it.
//
// Why each setting:
//   - --data-root, --exec-root, --pidfile, -H unix:// in the temp dir:
//     nothing shared with /var/lib/docker or /run/docker.sock. dockerd
//     still creates an empty /run/docker/plugins, whatever its flags.
//   - --containerd: ours, so that its state is in a temp dir too and its
//     end is ours to check; dockerd would otherwise start one under
//     --exec-root.
//   - --iptables=false --ip6tables=false --bridge=none: no docker0 bridge
//     and no firewall rules; containers run with --network none.
//   - native.cgroupdriver=cgroupfs: there is no systemd.
//   - default-ulimits nofile at most our own hard limit, as for podman:
//     a container may not get more without CAP_SYS_RESOURCE.
//   - no insecure-registries: Docker reaches 127.0.0.0/8 over plain HTTP
//     as it is, which is what the README tells users.
type dockerd struct {
	cli string
	env []string // DOCKER_HOST and DOCKER_CONFIG for the CLI
}

// startDockerd starts a dockerd and waits until its API answers /_ping.
func startDockerd(tb testing.TB) *dockerd {
	tb.Helper()
	bin := need(tb, "dockerd")
	cli := need(tb, "docker")
	ctd := startContainerd(tb)
	dir := shortTempDir(tb, "dkd-")
	sock := filepath.Join(dir, "docker.sock")
	nofile := rlimitHard(unix.RLIMIT_NOFILE, 20000)
	cfg, err := json.Marshal(map[string]any{
		"default-ulimits": map[string]any{"nofile": map[string]any{"Name": "nofile", "Soft": nofile, "Hard": nofile}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), cfg, 0o644); err != nil {
		tb.Fatal(err)
	}
	cliConfig := filepath.Join(dir, "cli")
	if err := os.MkdirAll(cliConfig, 0o700); err != nil {
		tb.Fatal(err)
	}
	api := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	startEngine(tb, "dockerd", dir, os.Environ(), func(ctx context.Context) error {
		return dockerPing(ctx, api)
	}, bin,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", "unix://"+sock,
		"--containerd", ctd.Addr,
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
	)
	d := &dockerd{cli: cli, env: append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+cliConfig)}
	tb.Cleanup(func() {
		// Containers run with --rm; one left means a run went wrong, and
		// dockerd would take its time stopping it.
		if out, _, err := runCmd(tb, d.env, d.cli, "ps", "--all", "--quiet"); err == nil && strings.TrimSpace(out) != "" {
			tb.Errorf("containers left running: %s", strings.Fields(out))
			runCmd(tb, d.env, d.cli, append([]string{"rm", "--force"}, strings.Fields(out)...)...)
		}
	})
	return d
}

func dockerPing(ctx context.Context, api *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := api.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_ping: %s", resp.Status)
	}
	return nil
}

// docker runs the docker CLI against this dockerd and fails the test on
// error.
func (d *dockerd) docker(tb testing.TB, args ...string) string {
	tb.Helper()
	return mustRun(tb, d.env, d.cli, args...)
}

// run pulls image and runs it with `docker run --rm --network none`, args
// (if any) as the command, and returns the container's stdout. The
// signature is podman.run's, so that the same cases run with both.
func (d *dockerd) run(tb testing.TB, image string, args ...string) string {
	tb.Helper()
	d.docker(tb, "pull", "--quiet", image)
	return d.docker(tb, append([]string{"run", "--rm", "--network", "none", "--pull", "never", image}, args...)...)
}

// inspect returns `docker image inspect --format FORMAT image`, trimmed.
func (d *dockerd) inspect(tb testing.TB, image, format string) string {
	tb.Helper()
	return strings.TrimSpace(d.docker(tb, "image", "inspect", "--format", format, image))
}

// layersOf is the image's RootFS layers (diff IDs), as Docker holds them.
func (d *dockerd) layersOf(tb testing.TB, image string) []string {
	tb.Helper()
	var layers []string
	if err := json.Unmarshal([]byte(d.inspect(tb, image, "{{json .RootFS.Layers}}")), &layers); err != nil {
		tb.Fatalf("RootFS.Layers of %s: %v", image, err)
	}
	return layers
}
