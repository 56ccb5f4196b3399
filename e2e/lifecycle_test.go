package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonEnv is the environment of a daemon run by hand: XDG and Docker
// config directories in dir, and no NGROK_AUTHTOKEN but what extra sets.
func daemonEnv(tb testing.TB, dir string, extra ...string) []string {
	tb.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NGROK_AUTHTOKEN=") {
			env = append(env, kv)
		}
	}
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"} {
		d := filepath.Join(dir, strings.ToLower(v))
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
		env = append(env, v+"="+d)
	}
	return append(env, extra...)
}

// runUpToExit runs `towerreg-dev up args...`, which must exit by itself
// within 30 s, and returns its output, exit code and run time.
func runUpToExit(tb testing.TB, env []string, args ...string) (string, int, time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemonBinary(tb), append([]string{"up", "--no-tui"}, args...)...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		tb.Fatalf("towerreg-dev up %v is still running after 30 s; it should have exited:\n%s", args, out)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("towerreg-dev up %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode(), took
}

// TestLifecycleStartErrors: a start that cannot work exits at once,
// non-zero, and says why.
func TestLifecycleStartErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"--tunnel ngrok without a token", []string{"--listen", freeAddr(t), "--tunnel", "ngrok"}, nil,
			[]string{"the ngrok tunnel needs an auth token", "set NGROK_AUTHTOKEN"}},
		{"--tunnel ngrok with an empty NGROK_AUTHTOKEN", []string{"--listen", freeAddr(t), "--tunnel", "ngrok"}, []string{"NGROK_AUTHTOKEN="},
			[]string{"the ngrok tunnel needs an auth token"}},
		{"unknown tunnel", []string{"--listen", freeAddr(t), "--tunnel", "frp"}, nil, []string{`tunnel provider "frp": want ngrok or off`}},
		{"port in use", []string{"--listen", taken.Addr().String()}, nil,
			[]string{"listen on " + taken.Addr().String(), "address already in use"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code, took := runUpToExit(t, daemonEnv(t, t.TempDir(), tt.env...), tt.args...)
			t.Logf("exit %d after %v: %s", code, took.Round(time.Millisecond), strings.TrimSpace(out))
			if code == 0 {
				t.Errorf("exit 0, want non-zero")
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, out)
				}
			}
			if took > 10*time.Second {
				t.Errorf("took %v to fail; it should be at once", took)
			}
		})
	}
}

var logTime = regexp.MustCompile(`^time=(\S+) `)

// waitLogLine waits for a line of the daemon's log that contains all of
// parts, and returns it with the time the daemon stamped on it.
func waitLogLine(tb testing.TB, d *towerreg, within time.Duration, parts ...string) (string, time.Time) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		f, err := os.Open(d.proc.logPath)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				f.Close()
				var at time.Time
				if m := logTime.FindStringSubmatch(line); m != nil {
					at, _ = time.Parse(time.RFC3339Nano, m[1])
				}
				return line, at
			}
		}
		f.Close()
		if time.Now().After(deadline) {
			tb.Fatalf("no log line with %q within %v; the log:\n%s", parts, within, d.proc.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLifecycleTunnelNoNetwork runs `up --tunnel ngrok` with an invalid
// token on this machine, which cannot reach ngrok: the daemon logs why in
// plain words within 10 s of trying, reports it in its status, and serves
// pulls all along; the token is in no log line.
func TestLifecycleTunnelNoNetwork(t *testing.T) {
	const token = "invalid-e2e-2Tok3n"
	u, fx := startUpstreamWithImages(t)
	t.Setenv("NGROK_AUTHTOKEN", token) // the daemon inherits it
	d := startDaemon(t, "--default-registry", u.Host, "--tunnel", "ngrok")

	_, connecting := waitLogLine(t, d, 10*time.Second, "tunnel connecting", "provider=ngrok")
	line, down := waitLogLine(t, d, 10*time.Second, "tunnel down", "provider=ngrok", "reason=")
	t.Logf("failure logged %v after the tunnel started: %s", down.Sub(connecting).Round(time.Millisecond), line)
	if took := down.Sub(connecting); connecting.IsZero() || took > 10*time.Second {
		t.Errorf("the failure came %v after connecting, want within 10 s", took)
	}
	if !strings.Contains(line, "cannot reach ngrok") && !strings.Contains(line, "auth token") {
		t.Errorf("the reason is not in plain words: %s", line)
	}

	resp, body := do(t, http.MethodGet, d.url("/_towerreg/status"))
	var st struct {
		Tunnel struct{ Provider, State, URL, Error string }
	}
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status: %s %v: %s", resp.Status, err, body)
	}
	if st.Tunnel.Provider != "ngrok" || st.Tunnel.State != "down" || st.Tunnel.Error == "" || st.Tunnel.URL != "" {
		t.Errorf("status tunnel = %+v, want ngrok down with the reason", st.Tunnel)
	}

	// The local registry serves a whole pull meanwhile.
	dir := newSkopeo(t).copyToOCI(t, d.ref(repoBusybox), false)
	checkAppended(t, fx.Busybox, layoutImage(t, dir), true)

	if b, _ := os.ReadFile(d.proc.logPath); strings.Contains(string(b), token) {
		t.Errorf("the daemon's log holds the auth token")
	}
}

// throttle is a reverse proxy to target that sends the body of a GET of
// the blob slow at about rate bytes per second, and says when it starts.
type throttle struct {
	srv     *httptest.Server
	started chan struct{}
}

func newThrottle(tb testing.TB, target, slow string, rate int) *throttle {
	th := &throttle{started: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+slow) && resp.StatusCode == http.StatusOK {
			close(th.started)
			resp.Body = &slowBody{ReadCloser: resp.Body, rate: rate}
		}
		return nil
	}
	th.srv = httptest.NewServer(rp)
	tb.Cleanup(th.srv.Close)
	return th
}

type slowBody struct {
	io.ReadCloser
	rate int
}

func (s *slowBody) Read(p []byte) (int, error) {
	const chunk = 32 << 10
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := s.ReadCloser.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(s.rate))
	return n, err
}

// TestLifecycleSIGTERMInFlight stops the daemon with SIGTERM while a big
// blob streams through it, slowly: the transfer completes, whole and
// right, and only then does the daemon exit, with status 0.
func TestLifecycleSIGTERMInFlight(t *testing.T) {
	const size = 6 << 20
	u := startUpstream(t)
	img := bigImage(t, 1, size, 7)
	u.push(t, "test/big:latest", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	blobSize, _ := layers[0].Size()
	// About 2.5 s for the blob: well inside the daemon's 5 s bound for
	// in-flight requests, well past the moment of the signal.
	rate := int(blobSize * 10 / 25)
	th := newThrottle(t, u.Host, blob.String(), rate)
	d := startDaemon(t, "--default-registry", strings.TrimPrefix(th.srv.URL, "http://"))

	resp, body := do(t, http.MethodGet, d.url("/v2/test/big/manifests/latest")) // the pull's first step
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %s %s", resp.Status, body)
	}
	type result struct {
		n      int64
		digest string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := httpClient.Get(d.url("/v2/test/big/blobs/" + blob.String()))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			got <- result{err: fmt.Errorf("status %s", resp.Status)}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		got <- result{n: n, digest: fmt.Sprintf("sha256:%x", h.Sum(nil)), err: err}
	}()
	select {
	case <-th.started:
	case r := <-got:
		t.Fatalf("the blob request ended before it streamed: %+v", r)
	case <-time.After(time.Minute):
		t.Fatal("the daemon never fetched the blob from upstream")
	}
	time.Sleep(300 * time.Millisecond) // bytes are flowing
	d.stopped = true
	signalled := time.Now()
	if err := d.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	var r result
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the blob did not complete within 30 s of SIGTERM")
	}
	completed := time.Since(signalled)
	if r.err != nil || r.n != blobSize || r.digest != blob.String() {
		t.Errorf("the in-flight blob: %d bytes, %s, %v; want %d bytes, %s", r.n, r.digest, r.err, blobSize, blob)
	}
	select {
	case <-d.proc.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("the daemon did not exit within %v of SIGTERM", stopTimeout)
	}
	exited := time.Since(signalled)
	t.Logf("SIGTERM, then the blob completed after %v, the daemon exited after %v (%v)", completed.Round(time.Millisecond), exited.Round(time.Millisecond), d.proc.waitErr)
	if d.proc.waitErr != nil {
		t.Errorf("the daemon exited with %v, want status 0", d.proc.waitErr)
	}
	if completed < 500*time.Millisecond {
		t.Errorf("the blob completed %v after the signal: it was not in flight long enough to test anything", completed)
	}
	if b, _ := os.ReadFile(d.proc.logPath); strings.Contains(string(b), "did not finish in time") {
		t.Errorf("the daemon cut in-flight requests:\n%s", d.proc.logTail())
	}
}

// TestLifecycleSecretsStayOut runs the daemon with a registry password and
// an ngrok auth token in its config file, pulls through it with those
// credentials while reading its event stream, and searches the log, the
// events and `towerreg-dev config` for either secret.
func TestLifecycleSecretsStayOut(t *testing.T) {
	const authtoken = "e2e-2ngrokTok3n-secret"
	u, _ := startPrivateUpstream(t)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	yml := "registries:\n  " + u.Host + ":\n    username: " + privateUser + "\n    password: " + privatePassword + "\n" +
		"tunnel:\n  provider: ngrok\n  authtoken: " + authtoken + "\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--config", cfg, "--log-level", "debug")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.url("/_towerreg/events"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body) // until cancel
		events <- string(b)
	}()
	newSkopeo(t).copyToOCI(t, d.ref(strings.Replace(u.Host, ":", "_", 1)+"/"+repoBusybox), false)
	waitLogLine(t, d, 10*time.Second, "tunnel down")
	time.Sleep(200 * time.Millisecond) // the last events reach the stream
	cancel()
	stream := <-events
	resp.Body.Close()
	d.stop(t)
	logs, _ := os.ReadFile(d.proc.logPath)

	out := mustRun(t, daemonEnv(t, t.TempDir()), daemonBinary(t), "config", "--config", cfg)
	for where, text := range map[string]string{"log": string(logs), "event stream": stream, "config output": out} {
		for _, secret := range []string{privatePassword, authtoken} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds the secret %q", where, secret)
			}
		}
	}
	// The tunnel failed before the stream was opened, so only the log
	// tells of it; the stream has the pull.
	if !strings.Contains(stream, "event: ManifestServed") || !strings.Contains(stream, "event: BlobServed") {
		t.Errorf("the event stream missed the pull:\n%.2000s", stream)
	}
	if !strings.Contains(out, "authtoken: \"********\"") || !strings.Contains(out, "password: \"********\"") || !strings.Contains(out, "username: "+privateUser) {
		t.Errorf("config output:\n%s", out)
	}
}
