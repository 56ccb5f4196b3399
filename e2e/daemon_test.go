package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

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
	dir  string // holds its XDG and Docker config directories
	// stopped is set once stop ran, so cleanup does not judge it twice.
	stopped bool
}

// stateDir is the daemon's $XDG_STATE_HOME.
func (d *towerreg) stateDir() string { return filepath.Join(d.dir, "xdg_state_home") }

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
	return startDaemonIn(tb, tb.TempDir(), args...)
}

// startDaemonIn is startDaemon with its directories in dir: a daemon
// started again in the same dir finds its cache and state.
func startDaemonIn(tb testing.TB, dir string, args ...string) *towerreg {
	tb.Helper()
	return startDaemonArgs(tb, dir, func(addr string) ([]string, error) {
		return append([]string{"up", "--no-tui", "--listen", addr}, args...), nil
	})
}

// startDaemonArgs is startDaemonIn with the whole command line of the
// daemon given by args, for each address tried.
func startDaemonArgs(tb testing.TB, dir string, args func(addr string) ([]string, error)) *towerreg {
	tb.Helper()
	return startDaemonBin(tb, daemonBinary(tb), dir, args)
}

// startDaemonBin is startDaemonArgs with the daemon binary bin.
func startDaemonBin(tb testing.TB, bin, dir string, args func(addr string) ([]string, error)) *towerreg {
	tb.Helper()
	env := os.Environ()
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"} {
		d := filepath.Join(dir, strings.ToLower(v))
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
		env = append(env, v+"="+d) // the last of duplicate keys wins
	}
	p, addr := startServer(tb, "towerreg-dev", env, bin, args)
	// Registered after startServer's cleanup, so it runs first: it stops
	// the daemon and judges how it ended.
	d := &towerreg{Addr: addr, proc: p, dir: dir}
	tb.Cleanup(func() {
		if !d.stopped {
			d.stop(tb)
		}
	})
	return d
}

// stop stops the daemon with SIGTERM and fails the test unless it exits
// cleanly and reported no data race.
func (d *towerreg) stop(tb testing.TB) {
	tb.Helper()
	d.stopped = true
	p := d.proc
	func() {
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
	}()
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

// manifestDigest GETs the manifest of name:ref ("test/busybox", "latest")
// through the daemon and returns its digest, computed from the body and
// checked against Docker-Content-Digest.
func (d *towerreg) manifestDigest(tb testing.TB, name, ref string) string {
	tb.Helper()
	resp, body := do(tb, http.MethodGet, d.url("/v2/"+name+"/manifests/"+ref))
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET manifest %s:%s: %s %.500s", name, ref, resp.Status, body)
	}
	sum := "sha256:" + hexSHA256(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != sum {
		tb.Fatalf("GET manifest %s:%s: Docker-Content-Digest %q, body digest %s", name, ref, got, sum)
	}
	return sum
}
