package e2e

// The dashboard as a user sees it: `towerreg-dev up` in a real terminal
// (tmux), a pull through it, the screen read back with capture-pane, and
// `q` ending the daemon cleanly.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxServer is a tmux server of its own (-L), so a test neither sees nor
// touches the user's sessions.
type tmuxServer struct {
	bin, socket string
}

func (s tmuxServer) run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(s.bin, append([]string{"-L", s.socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s tmuxServer) capture(tb testing.TB) string {
	tb.Helper()
	return s.run(tb, "capture-pane", "-p", "-t", "dash")
}

func TestDashboardTmux(t *testing.T) {
	tmux := need(t, "tmux")
	sk := newSkopeo(t)
	u, _ := startUpstreamWithImages(t)
	bin := daemonBinary(t)

	dir := t.TempDir()
	var env []string
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"} {
		d := filepath.Join(dir, strings.ToLower(v))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, v+"="+d)
	}
	addr := freeAddr(t)
	exitFile, errFile := filepath.Join(dir, "exit"), filepath.Join(dir, "stderr")
	// The shell records how the daemon exited; its stderr (a race report)
	// goes to a file, since the dashboard owns the screen.
	script := fmt.Sprintf("env %s %q up --listen %s --default-registry %s 2>%q; echo $? >%q",
		strings.Join(env, " "), bin, addr, u.Host, errFile, exitFile)
	srv := tmuxServer{bin: tmux, socket: fmt.Sprintf("towerreg-e2e-%d", os.Getpid())}
	srv.run(t, "new-session", "-d", "-s", "dash", "-x", "120", "-y", "40", "sh", "-c", script)
	t.Cleanup(func() { exec.Command(tmux, "-L", srv.socket, "kill-server").Run() })

	waitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	}, func() string { return srv.capture(t) })

	sk.copyToOCI(t, addr+"/"+repoBusybox, false)
	resp, body := do(t, http.MethodHead, "http://"+addr+"/v2/test/busybox/manifests/latest")
	digest := resp.Header.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("HEAD manifest: %s %q %s", resp.Status, digest, body)
	}
	prefix := strings.TrimPrefix(digest, "sha256:")[:8]

	var screen string
	waitFor(t, 15*time.Second, func() error {
		screen = srv.capture(t)
		for _, want := range []string{"test/busybox:latest", "→" + prefix, "ok"} {
			if !strings.Contains(screen, want) {
				return fmt.Errorf("the screen has no %q", want)
			}
		}
		return nil
	}, func() string { return screen })
	t.Logf("the dashboard after the pull:\n%s", screen)

	srv.run(t, "send-keys", "-t", "dash", "q")
	var code string
	waitFor(t, 20*time.Second, func() error {
		b, err := os.ReadFile(exitFile)
		if err != nil || len(b) == 0 {
			return fmt.Errorf("the daemon has not exited after q")
		}
		code = strings.TrimSpace(string(b))
		return nil
	}, func() string { return srv.capture(t) })
	stderr, _ := os.ReadFile(errFile)
	if code != "0" {
		t.Errorf("towerreg-dev exited %s after q, want 0; stderr:\n%s", code, stderr)
	}
	if strings.Contains(string(stderr), "WARNING: DATA RACE") {
		t.Errorf("towerreg-dev reported a data race:\n%s", stderr)
	}
	log, err := os.ReadFile(filepath.Join(dir, "xdg_state_home", "towerreg", "towerreg.log"))
	if err != nil || !strings.Contains(string(log), "shutting down") {
		t.Errorf("the log file does not record the graceful stop (%v):\n%s", err, log)
	}
}

// waitFor polls check until it passes or the timeout ends; then it fails
// the test with the last error and what show returns (the screen).
func waitFor(t *testing.T, timeout time.Duration, check func() error, show func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v; the screen:\n%s", timeout, err, show())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
