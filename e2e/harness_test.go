package e2e

// The harness: tool discovery, the upstream registry, the offline test
// images, the client wrappers (skopeo, crane, podman) and the daemon under
// test. Tests in registry_test.go prove it against the upstream alone;
// proxy_test.go uses it through towerreg-dev.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// sharedDir holds what is built once per test binary run (the daemon).
// Everything else lives in each test's own t.TempDir.
var sharedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "towerreg-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Timeouts. They bound a hung tool; none is expected to come close.
const (
	startTimeout   = 30 * time.Second // a server answering GET /v2/
	commandTimeout = 3 * time.Minute  // one client command
	stopTimeout    = 15 * time.Second // a server exiting after SIGTERM
)

// ---------------------------------------------------------------------------
// Tool discovery

// installHints says how to get each tool on Debian 12; .ci/run does this.
var installHints = map[string]string{
	"skopeo":          "apt-get install skopeo",
	"docker-registry": "apt-get install docker-registry",
	"podman":          "apt-get install podman runc uidmap",
	"runc":            "apt-get install runc",
	"busybox":         "apt-get install busybox-static",
	"crane":           "make tools (GOBIN=<repo>/bin go install github.com/google/go-containerregistry/cmd/crane@v0.22.1)",
	"go":              "install Go 1.26",
}

// required reports whether a missing prerequisite fails the test instead of
// skipping it: in CI, or when asked with TOWERREG_E2E=require.
func required() bool {
	if os.Getenv("TOWERREG_E2E") == "require" {
		return true
	}
	ci := os.Getenv("CI")
	return ci != "" && ci != "false" && ci != "0"
}

// missing skips the test with a reason nobody can overlook, or fails it
// where the end-to-end tests must run.
func missing(tb testing.TB, what, how string) {
	tb.Helper()
	if required() {
		tb.Fatalf("E2E PREREQUISITE MISSING: %s; fix: %s (end-to-end tests are required here: CI=%q TOWERREG_E2E=%q)",
			what, how, os.Getenv("CI"), os.Getenv("TOWERREG_E2E"))
	}
	tb.Skipf("SKIPPED: %s; %s; CI does not skip this", what, how)
}

// gate skips every end-to-end test in -short mode and when switched off
// with TOWERREG_E2E=off: both are an explicit choice of whoever runs them.
func gate(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("SKIPPED: end-to-end test in -short mode; run without -short (CI does)")
	}
	if os.Getenv("TOWERREG_E2E") == "off" {
		tb.Skip("SKIPPED: TOWERREG_E2E=off")
	}
}

// need returns the path of an external tool, or skips or fails the test
// when it is missing. crane is looked up in <repo>/bin first, where
// `make tools` installs the pinned version.
func need(tb testing.TB, tool string) string {
	tb.Helper()
	gate(tb)
	hint := installHints[tool]
	if tool == "busybox" {
		return needStaticBusybox(tb)
	}
	if tool == "crane" {
		p := filepath.Join(repoRoot(tb), "bin", "crane")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	p, err := exec.LookPath(tool)
	if err != nil {
		missing(tb, tool+" not installed", hint)
	}
	return p
}

// needStaticBusybox finds a statically linked busybox: the test images have
// no libc, so a dynamic one (Debian's "busybox" package) cannot run in them.
func needStaticBusybox(tb testing.TB) string {
	tb.Helper()
	hint := installHints["busybox"]
	p := "/bin/busybox"
	if _, err := os.Stat(p); err != nil {
		if p, err = exec.LookPath("busybox"); err != nil {
			missing(tb, "busybox not installed", hint)
		}
	}
	f, err := elf.Open(p)
	if err != nil {
		missing(tb, fmt.Sprintf("%s is not an ELF binary (%v)", p, err), hint)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		missing(tb, fmt.Sprintf("%s is for %v, the test images are linux/amd64", p, f.Machine), hint)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			missing(tb, p+" is dynamically linked; the test images have no libc", hint)
		}
	}
	return p
}

// needRoot is for rootful podman: the only podman set-up CI runs.
func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		missing(tb, "podman tests need root (rootful podman, as in CI)", "run the tests as root")
	}
}

var repoRootDir = sync.OnceValues(func() (string, error) {
	// go test runs in the package directory, e2e/.
	dir, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	if !bytes.Contains(mod, []byte("module github.com/tower-reg/tower-reg\n")) {
		return "", fmt.Errorf("%s/go.mod is not tower-reg's", dir)
	}
	return dir, nil
})

func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := repoRootDir()
	if err != nil {
		tb.Fatalf("repository root: %v", err)
	}
	return dir
}

// ---------------------------------------------------------------------------
// Processes

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. Another process can take it before ours binds it, so the servers
// below retry on "address already in use".
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// process is a long-running server (the upstream registry, the daemon)
// whose output goes to a file, shown in the test log if the test fails.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once Wait returned
	waitErr error         // Wait's result, set before exited is closed
}

func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	// If the test binary dies (a -timeout panic), take the server with it
	// rather than leave it listening. Pdeathsig follows the thread that
	// started the child; the Go runtime only ends threads that a goroutine
	// locked, which nothing here does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// errExited means the server ended before it answered.
var errExited = errors.New("exited before it was ready")

// waitReady polls url until it answers 200, the process exits or the
// timeout passes.
func (p *process) waitReady(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.exited:
			return fmt.Errorf("%s %w (%v)", p.name, errExited, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v", p.name, startTimeout, last)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits; a server that ignores it is killed and the
// test fails. It returns how the process ended.
func (p *process) stop(tb testing.TB) error {
	tb.Helper()
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(stopTimeout):
		tb.Errorf("%s did not exit %v after SIGTERM; killing it", p.name, stopTimeout)
		p.cmd.Process.Kill()
		<-p.exited
		return p.waitErr
	}
}

// killedBy reports the signal that ended a process, from Wait's error.
func killedBy(waitErr error) (syscall.Signal, bool) {
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
}

// logTail returns the end of the process's output.
func (p *process) logTail() string {
	const max = 32 << 10
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}

// startServer starts a server on a free 127.0.0.1 port and waits until
// GET http://ADDR/v2/ answers 200. args gets the address; it retries when
// another process took the port first. Cleanup stops it and, when the test
// failed, prints its output.
func startServer(tb testing.TB, name string, env []string, bin string, args func(addr string) ([]string, error)) (*process, string) {
	tb.Helper()
	dir := tb.TempDir()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(tb)
		a, err := args(addr)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		p, err := startProcess(name, filepath.Join(dir, fmt.Sprintf("%s.%d.log", name, attempt)), env, bin, a...)
		if err != nil {
			tb.Fatal(err)
		}
		start := time.Now()
		err = p.waitReady("http://" + addr + "/v2/")
		if err == nil {
			tb.Logf("%s listening on %s (ready in %v)", name, addr, time.Since(start).Round(time.Millisecond))
			tb.Cleanup(func() {
				p.stop(tb)
				if tb.Failed() {
					tb.Logf("%s output (%s):\n%s", name, p.logPath, p.logTail())
				}
			})
			return p, addr
		}
		p.stop(tb)
		out := p.logTail()
		if errors.Is(err, errExited) && strings.Contains(out, "address already in use") && attempt < 3 {
			tb.Logf("%s: port %s was taken, retrying", name, addr)
			continue
		}
		if sig, ok := killedBy(p.waitErr); ok && errors.Is(err, errExited) {
			// The harness signals a server only once it is ready, so this
			// came from outside: typically a stale `kill PID` elsewhere on
			// a shared machine, once PIDs have wrapped around.
			err = fmt.Errorf("%w: killed by %v, which this harness did not send: another process on this machine did", err, sig)
		}
		tb.Fatalf("%v\n%s output:\n%s", err, name, out)
	}
}

// ---------------------------------------------------------------------------
// Upstream registry

// upstream is a docker-registry (distribution 2.8) on 127.0.0.1, no auth,
// storage in the test's temp dir.
type upstream struct {
	Host string // 127.0.0.1:PORT
}

// ref names repo ("test/busybox:latest") on the upstream.
func (u *upstream) ref(repo string) string { return u.Host + "/" + repo }

// No htpasswd variant: docker-registry takes only bcrypt hashes and
// golang.org/x/crypto is not in go.mod, so there is no way to make one here.

const registryConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: e2e-not-secret
`

// startUpstream starts an empty upstream registry.
func startUpstream(tb testing.TB) *upstream {
	tb.Helper()
	bin := need(tb, "docker-registry")
	dir := tb.TempDir()
	_, addr := startServer(tb, "docker-registry", os.Environ(), bin, func(addr string) ([]string, error) {
		cfg := filepath.Join(dir, "config.yml")
		data := fmt.Sprintf(registryConfig, filepath.Join(dir, "storage"), addr)
		if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
			return nil, err
		}
		return []string{"serve", cfg}, nil
	})
	return &upstream{Host: addr}
}

// startUpstreamWithImages starts an upstream holding the test images.
func startUpstreamWithImages(tb testing.TB) (*upstream, *fixtures) {
	tb.Helper()
	fx := testImages(tb) // before the registry: it may skip for busybox
	u := startUpstream(tb)
	start := time.Now()
	u.push(tb, repoBusybox, fx.Busybox)
	u.push(tb, repoEcho, fx.Echo)
	u.push(tb, repoNoShell, fx.NoShell)
	u.pushIndex(tb, repoMulti, fx.Multi)
	tb.Logf("pushed the test images in %v", time.Since(start).Round(time.Millisecond))
	return u, fx
}

func (u *upstream) tag(tb testing.TB, repo string) name.Tag {
	tb.Helper()
	tag, err := name.NewTag(u.ref(repo), name.Insecure, name.StrictValidation)
	if err != nil {
		tb.Fatal(err)
	}
	return tag
}

func (u *upstream) push(tb testing.TB, repo string, img v1.Image) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := remote.Write(u.tag(tb, repo), img, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("push %s: %v", repo, err)
	}
}

func (u *upstream) pushIndex(tb testing.TB, repo string, idx v1.ImageIndex) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := remote.WriteIndex(u.tag(tb, repo), idx, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("push %s: %v", repo, err)
	}
}

// ---------------------------------------------------------------------------
// Test images, built offline

// The repositories the test images are pushed to.
const (
	repoBusybox = "test/busybox:latest" // Docker schema 2, linux/amd64, Cmd ["sh"]
	repoEcho    = "test/echo:latest"    // OCI, Entrypoint ["/bin/echo","entry says:"], Cmd ["hello world"]
	repoNoShell = "test/noshell:latest" // Docker schema 2, only /bin/busybox, Entrypoint ["/bin/busybox","echo"]
	repoMulti   = "test/multi:latest"   // OCI index: linux/amd64 (busybox), linux/arm64 (a text file)
)

// What the images print when run with no arguments.
const (
	echoOutput    = "entry says: hello world"
	noShellOutput = "no shell here"
	arm64Text     = "arm64 payload: not meant to run here\n"
)

// fixtures are the test images. They are deterministic: the same busybox
// binary always gives the same digests.
type fixtures struct {
	Busybox    v1.Image // test/busybox
	Echo       v1.Image // test/echo
	NoShell    v1.Image // test/noshell
	Multi      v1.ImageIndex
	MultiAMD64 v1.Image // Multi's linux/amd64 child: busybox, as OCI
	MultiARM64 v1.Image // Multi's linux/arm64 child
}

// fixedTime stamps files and configs so that digests never change.
var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

var (
	fixturesOnce sync.Once
	fixturesVal  *fixtures
	fixturesErr  error
)

// testImages builds the test images once per run.
func testImages(tb testing.TB) *fixtures {
	tb.Helper()
	bb := need(tb, "busybox")
	fixturesOnce.Do(func() { fixturesVal, fixturesErr = buildFixtures(bb) })
	if fixturesErr != nil {
		tb.Fatalf("building the test images: %v", fixturesErr)
	}
	return fixturesVal
}

// tarEntry is one file, directory or symlink of a test layer.
type tarEntry struct {
	Name string
	Mode int64
	Body []byte // a regular file
	Link string // a symlink
	Dir  bool
}

// tarBytes writes entries as an uncompressed tar.
func tarBytes(entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, ModTime: fixedTime, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			h.Typeflag, h.Name = tar.TypeDir, strings.TrimSuffix(e.Name, "/")+"/"
		case e.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.Body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarLayer is a gzip layer of the given media type holding entries.
func tarLayer(mt types.MediaType, entries ...tarEntry) (v1.Layer, error) {
	b, err := tarBytes(entries)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(mt))
}

// newImage is an image of one manifest type with the given layers, for
// platform, running cfg.
func newImage(manifestType types.MediaType, platform v1.Platform, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, manifestType)
	if manifestType == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for i, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: fixedTime}, CreatedBy: fmt.Sprintf("e2e: layer %d", i)},
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// crane validate checks these against the platform an index gives.
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Created = v1.Time{Time: fixedTime}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

func buildFixtures(busyboxPath string) (*fixtures, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	busyboxEntries := []tarEntry{
		{Name: "bin", Mode: 0o755, Dir: true},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "env"} {
		busyboxEntries = append(busyboxEntries, tarEntry{Name: "bin/" + applet, Mode: 0o777, Link: "busybox"})
	}
	// The same bytes as a Docker and as an OCI layer: one blob, two
	// media types.
	dockerBusybox, err := tarLayer(types.DockerLayer, busyboxEntries...)
	if err != nil {
		return nil, err
	}
	ociBusybox, err := tarLayer(types.OCILayer, busyboxEntries...)
	if err != nil {
		return nil, err
	}
	// noshell has the binary alone: no /bin/sh for the entry to lean on.
	noShellLayer, err := tarLayer(types.DockerLayer, busyboxEntries[:2]...)
	if err != nil {
		return nil, err
	}
	arm64Layer, err := tarLayer(types.OCILayer, tarEntry{Name: "hello.txt", Mode: 0o644, Body: []byte(arm64Text)})
	if err != nil {
		return nil, err
	}

	shell := v1.Config{Cmd: []string{"sh"}, Env: []string{pathEnv}}
	var fx fixtures
	if fx.Busybox, err = newImage(types.DockerManifestSchema2, amd64, shell, dockerBusybox); err != nil {
		return nil, err
	}
	if fx.Echo, err = newImage(types.OCIManifestSchema1, amd64, v1.Config{
		Entrypoint: []string{"/bin/echo", "entry says:"},
		Cmd:        []string{"hello world"},
		Env:        []string{pathEnv},
	}, ociBusybox); err != nil {
		return nil, err
	}
	if fx.NoShell, err = newImage(types.DockerManifestSchema2, amd64, v1.Config{
		Entrypoint: []string{"/bin/busybox", "echo"},
		Cmd:        []string{noShellOutput},
	}, noShellLayer); err != nil {
		return nil, err
	}
	if fx.MultiAMD64, err = newImage(types.OCIManifestSchema1, amd64, shell, ociBusybox); err != nil {
		return nil, err
	}
	if fx.MultiARM64, err = newImage(types.OCIManifestSchema1, arm64, v1.Config{
		Cmd: []string{"cat", "/hello.txt"},
	}, arm64Layer); err != nil {
		return nil, err
	}
	fx.Multi = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: fx.MultiAMD64, Descriptor: v1.Descriptor{Platform: &amd64}},
		mutate.IndexAddendum{Add: fx.MultiARM64, Descriptor: v1.Descriptor{Platform: &arm64}},
	)
	return &fx, nil
}

// bigImage is a linux/amd64 OCI image of `layers` layers holding about
// totalBytes of pseudo-random data in all, for benchmarks (256 MB in 3
// layers is the usual call). The data is random so that gzip cannot shrink
// it: the compressed blobs are as large as the content. It is streamed, not
// held in memory, and seeded: every read of a layer gives the same bytes,
// which the digest computation and the push both need (ggcr reads a layer
// more than once), and the same seed gives the same image.
func bigImage(tb testing.TB, layers int, totalBytes int64, seed uint64) v1.Image {
	tb.Helper()
	per := totalBytes / int64(layers)
	var ls []v1.Layer
	for i := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return randomTar(seed, uint64(i), per), nil
		}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			tb.Fatalf("big layer %d: %v", i, err)
		}
		ls = append(ls, l)
	}
	img, err := newImage(types.OCIManifestSchema1, amd64, v1.Config{Cmd: []string{"sh"}, Env: []string{pathEnv}}, ls...)
	if err != nil {
		tb.Fatalf("big image: %v", err)
	}
	return img
}

// randomTar streams a tar with one file of size pseudo-random bytes.
func randomTar(seed, stream uint64, size int64) io.ReadCloser {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], stream)
	src := rand.NewChaCha8(key)
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{
			Name: fmt.Sprintf("big/layer-%d.bin", stream), Mode: 0o644, Size: size,
			ModTime: fixedTime, Typeflag: tar.TypeReg,
		})
		if err == nil {
			_, err = io.CopyN(tw, src, size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	return pr
}

// ---------------------------------------------------------------------------
// Reading what the clients wrote

// file is one entry of a layer tar.
type file struct {
	Type     byte
	Mode     int64
	Linkname string
	Body     []byte // regular files up to 4 MiB
}

// layerFiles lists a layer's entries by clean relative name ("bin/sh").
func layerFiles(tb testing.TB, l v1.Layer) map[string]file {
	tb.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		tb.Fatalf("layer: %v", err)
	}
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			tb.Fatalf("layer tar: %v", err)
		}
		f := file{Type: h.Typeflag, Mode: h.Mode, Linkname: h.Linkname}
		if h.Typeflag == tar.TypeReg && h.Size <= 4<<20 {
			if f.Body, err = io.ReadAll(tr); err != nil {
				tb.Fatalf("layer tar %s: %v", h.Name, err)
			}
		}
		n := strings.TrimPrefix(filepath.Clean("/"+h.Name), "/")
		files[n] = f
	}
}

// layoutTop returns the one manifest skopeo wrote into an OCI layout with
// `oci:DIR` (no tag): an image or, after `--all` of a list, an index.
func layoutTop(tb testing.TB, dir string) (v1.ImageIndex, v1.Descriptor) {
	tb.Helper()
	lp, err := layout.FromPath(dir)
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	if len(im.Manifests) != 1 {
		tb.Fatalf("OCI layout %s lists %d manifests, want 1", dir, len(im.Manifests))
	}
	return idx, im.Manifests[0]
}

// layoutImage reads the single image in an OCI layout.
func layoutImage(tb testing.TB, dir string) v1.Image {
	tb.Helper()
	idx, d := layoutTop(tb, dir)
	if d.MediaType.IsIndex() {
		tb.Fatalf("OCI layout %s holds an index (%s), want an image", dir, d.MediaType)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	return img
}

// layoutIndex reads the single index in an OCI layout and returns it with
// its images by platform ("linux/arm64/v8").
func layoutIndex(tb testing.TB, dir string) (v1.ImageIndex, map[string]v1.Image) {
	tb.Helper()
	top, d := layoutTop(tb, dir)
	if !d.MediaType.IsIndex() {
		tb.Fatalf("OCI layout %s holds %s, want an index", dir, d.MediaType)
	}
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		tb.Fatal(err)
	}
	imgs := map[string]v1.Image{}
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			tb.Fatalf("OCI layout %s: child %s: %v", dir, m.Digest, err)
		}
		imgs[m.Platform.String()] = img
	}
	return idx, imgs
}

// layerDigests lists an image's layer digests in order.
func layerDigests(tb testing.TB, img v1.Image) []v1.Hash {
	tb.Helper()
	ls, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	var ds []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

func digestOf(tb testing.TB, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	tb.Helper()
	d, err := x.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// ---------------------------------------------------------------------------
// Client wrappers

// runCmd runs a client command with a timeout and returns its stdout and
// stderr. Every command and its duration goes to the test log.
func runCmd(tb testing.TB, env []string, bin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
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
	if out, errOut, err := runCmd(tb, p.env, p.bin, p.args("system", "reset", "--force")...); err != nil {
		tb.Errorf("podman system reset: %v\n%s%s", err, out, errOut)
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

// ---------------------------------------------------------------------------
// The daemon under test

// entryPayload is the amd64 entry binary of the default layer, built by
// `make layer` and embedded in the daemon.
const entryPayload = "layer/defaultlayer/payload/.platforms/linux_amd64/.towerreg/entry"

var daemonBuild struct {
	once sync.Once
	path string
	err  error
}

// raceEnabled reports whether this test binary was built with -race; the
// daemon then is too, so the end-to-end runs look for data races in it.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// daemonBinary builds ./cmd/towerreg-dev once per test run, or returns
// TOWERREG_DEV_BIN when that names a binary built already.
func daemonBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("TOWERREG_DEV_BIN"); p != "" {
		return p
	}
	root := repoRoot(tb)
	if _, err := os.Stat(filepath.Join(root, entryPayload)); err != nil {
		// The daemon embeds the payload when it is compiled: building it
		// without would test images that keep their own entrypoint.
		tb.Fatalf("%s is missing: run `make layer` (make test does) before the end-to-end tests", entryPayload)
	}
	goBin := need(tb, "go")
	daemonBuild.once.Do(func() {
		out := filepath.Join(sharedDir, "towerreg-dev")
		args := []string{"build", "-o", out}
		if raceEnabled() {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/towerreg-dev")
		cmd := exec.Command(goBin, args...)
		cmd.Dir = root
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			daemonBuild.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
			return
		}
		tb.Logf("built towerreg-dev (race=%v) in %v", raceEnabled(), time.Since(start).Round(time.Millisecond))
		daemonBuild.path = out
	})
	if daemonBuild.err != nil {
		tb.Fatalf("building the daemon: %v", daemonBuild.err)
	}
	return daemonBuild.path
}

// towerreg is a running towerreg-dev.
type towerreg struct {
	Addr string // 127.0.0.1:PORT
	proc *process
}

// ref names repo on the proxy: "127.0.0.1:PORT/" + repo.
func (d *towerreg) ref(repo string) string { return d.Addr + "/" + repo }

// url is http://ADDR + path.
func (d *towerreg) url(path string) string { return "http://" + d.Addr + path }

// startDaemon runs `towerreg-dev up --no-tui --listen 127.0.0.1:PORT` plus
// args with its config, cache, state, runtime and Docker config directories
// in the test's temp dir, waits until GET /v2/ answers 200, and stops it
// with SIGTERM at cleanup. It fails the test if the daemon does not exit
// cleanly then, or (built with -race) reported a data race; its output is
// in the test log when the test failed.
func startDaemon(tb testing.TB, args ...string) *towerreg {
	tb.Helper()
	bin := daemonBinary(tb)
	dir := tb.TempDir()
	env := os.Environ()
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"} {
		d := filepath.Join(dir, strings.ToLower(v))
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
		env = append(env, v+"="+d) // the last of duplicate keys wins
	}
	p, addr := startServer(tb, "towerreg-dev", env, bin, func(addr string) ([]string, error) {
		return append([]string{"up", "--no-tui", "--listen", addr}, args...), nil
	})
	// Registered after startServer's cleanup, so it runs first: it stops
	// the daemon and judges how it ended.
	tb.Cleanup(func() {
		select {
		case <-p.exited:
			tb.Errorf("towerreg-dev exited during the test (%v)", p.waitErr)
		default:
			if err := p.stop(tb); err != nil {
				tb.Errorf("towerreg-dev did not exit cleanly after SIGTERM: %v", err)
			}
		}
		if b, _ := os.ReadFile(p.logPath); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			tb.Errorf("towerreg-dev reported a data race (its output follows)")
		}
	})
	return &towerreg{Addr: addr, proc: p}
}

// ---------------------------------------------------------------------------
// Raw HTTP

// httpClient follows no redirects: a redirect is an answer to check.
var httpClient = &http.Client{
	Timeout:       time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// manifestAccept is what a client accepts for a manifest.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
}, ", ")

// do sends one request and returns the response with its body read.
func do(tb testing.TB, method, url string) (*http.Response, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, body
}

// ociErrors is the error body of the distribution API.
type ociErrors struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// checkOCIError checks that a response is status with an OCI error body
// whose first code is one of codes. A HEAD response has no body to check.
func checkOCIError(tb testing.TB, method string, resp *http.Response, body []byte, status int, codes ...string) {
	tb.Helper()
	if resp.StatusCode != status {
		tb.Errorf("status %s, want %d %s; body: %.500s", resp.Status, status, http.StatusText(status), body)
	}
	if resp.StatusCode >= 500 {
		tb.Errorf("a client error answered with a server error: %s", resp.Status)
	}
	if method == http.MethodHead {
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	var e ociErrors
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		tb.Errorf("body is not OCI error JSON {\"errors\":[{\"code\":...}]} (%v): %.500s", err, body)
		return
	}
	if !slices.Contains(codes, e.Errors[0].Code) {
		tb.Errorf("error code %q, want one of %v; body: %.500s", e.Errors[0].Code, codes, body)
	}
}

// ---------------------------------------------------------------------------
// Tests of the harness's own pieces

// TestHarnessImages checks the offline test images: well-formed, the
// layouts the tests rely on, and deterministic.
func TestHarnessImages(t *testing.T) {
	fx := testImages(t)
	again, err := buildFixtures(needStaticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := digestOf(t, fx.Multi), digestOf(t, again.Multi); a != b {
		t.Errorf("test/multi built twice: %s then %s; the images must be deterministic", a, b)
	}

	files := layerFiles(t, mustLayer(t, fx.Busybox, 0))
	if f := files["bin/busybox"]; f.Type != tar.TypeReg || f.Mode&0o111 == 0 {
		t.Errorf("bin/busybox: %+v, want an executable file", f.Mode)
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "env"} {
		if f := files["bin/"+applet]; f.Type != tar.TypeSymlink || f.Linkname != "busybox" {
			t.Errorf("bin/%s: type %q link %q, want a symlink to busybox", applet, f.Type, f.Linkname)
		}
	}
	if _, ok := layerFiles(t, mustLayer(t, fx.NoShell, 0))["bin/sh"]; ok {
		t.Error("test/noshell has bin/sh")
	}

	for _, tt := range []struct {
		name      string
		img       v1.Image
		mediaType types.MediaType
		arch      string
	}{
		{"busybox", fx.Busybox, types.DockerManifestSchema2, "amd64"},
		{"echo", fx.Echo, types.OCIManifestSchema1, "amd64"},
		{"noshell", fx.NoShell, types.DockerManifestSchema2, "amd64"},
		{"multi/amd64", fx.MultiAMD64, types.OCIManifestSchema1, "amd64"},
		{"multi/arm64", fx.MultiARM64, types.OCIManifestSchema1, "arm64"},
	} {
		mt, err := tt.img.MediaType()
		if err != nil || mt != tt.mediaType {
			t.Errorf("%s: media type %s (%v), want %s", tt.name, mt, err, tt.mediaType)
		}
		cf, err := tt.img.ConfigFile()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if cf.OS != "linux" || cf.Architecture != tt.arch {
			t.Errorf("%s: platform %s/%s, want linux/%s", tt.name, cf.OS, cf.Architecture, tt.arch)
		}
		if n := len(layerDigests(t, tt.img)); len(cf.RootFS.DiffIDs) != n || len(cf.History) != n {
			t.Errorf("%s: %d layers, %d diff_ids, %d history entries", tt.name, n, len(cf.RootFS.DiffIDs), len(cf.History))
		}
	}
}

func mustLayer(tb testing.TB, img v1.Image, i int) v1.Layer {
	tb.Helper()
	ls, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	if i >= len(ls) {
		tb.Fatalf("image has %d layers, want layer %d", len(ls), i)
	}
	return ls[i]
}

// TestHarnessBigImage runs the benchmark image generator small: layers of
// the asked size that gzip cannot shrink, distinct, and the same on every
// build.
func TestHarnessBigImage(t *testing.T) {
	gate(t)
	const layers, total = 3, 3 * 256 << 10
	img := bigImage(t, layers, total, 1)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != layers {
		t.Fatalf("%d layers, want %d", len(ls), layers)
	}
	seen := map[v1.Hash]bool{}
	for i, l := range ls {
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		if size < total/layers {
			t.Errorf("layer %d: %d bytes compressed, want at least the %d bytes of random content", i, size, total/layers)
		}
		d := digestOf(t, l)
		if seen[d] {
			t.Errorf("layer %d repeats digest %s", i, d)
		}
		seen[d] = true
		files := layerFiles(t, l)
		if f, ok := files["big/layer-"+strconv.Itoa(i)+".bin"]; !ok || len(f.Body) != total/layers {
			t.Errorf("layer %d: files %v, want big/layer-%d.bin of %d bytes", i, slices.Collect(maps.Keys(files)), i, total/layers)
		}
	}
	if a, b := digestOf(t, img), digestOf(t, bigImage(t, layers, total, 1)); a != b {
		t.Errorf("same seed, two digests: %s, %s", a, b)
	}
	if a, b := digestOf(t, img), digestOf(t, bigImage(t, layers, total, 2)); a == b {
		t.Errorf("two seeds, one digest: %s", a)
	}
}
