package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runtimeFile is where a daemon started in dir writes its addresses.
func runtimeFile(dir string) string {
	return filepath.Join(dir, "xdg_runtime_dir", "towerreg", "daemon.json")
}

// writeConfig writes the config of a daemon (or client) in dir.
func writeConfig(tb testing.TB, dir, body string) {
	tb.Helper()
	p := filepath.Join(dir, "xdg_config_home", "towerreg", "config.yml")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// tokenTarget runs `towerreg-dev token IMAGE` with no --addr in env and
// returns the targetImage of its answer.
func tokenTarget(tb testing.TB, env []string, image string) string {
	tb.Helper()
	var tr struct{ TargetImage string }
	if err := json.Unmarshal([]byte(mustRun(tb, env, daemonBinary(tb), "token", image)), &tr); err != nil {
		tb.Fatal(err)
	}
	return tr.TargetImage
}

// syncBuffer is a bytes.Buffer that a command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIFindsDaemon: `token` and `dash --no-tui`, with no --addr, reach a
// daemon on a non-default port whose address is only in the config (and
// in its runtime file); two daemons in separate XDG directories stay
// apart; the file of a SIGKILLed daemon is ignored, and a daemon that
// stops removes its own.
func TestCLIFindsDaemon(t *testing.T) {
	u, _ := startUpstreamWithImages(t)
	bin := daemonBinary(t)
	dirA, dirB := t.TempDir(), t.TempDir()

	// A: the address only in its config.
	a := startDaemonArgs(t, dirA, func(addr string) ([]string, error) {
		writeConfig(t, dirA, "listen: "+addr+"\n")
		return []string{"up", "--no-tui", "--default-registry", u.Host}, nil
	})
	// B: the address on the command line only, so that its clients can
	// find it by its runtime file alone.
	b := startDaemonIn(t, dirB, "--default-registry", u.Host)
	envA, envB := daemonEnv(t, dirA), daemonEnv(t, dirB)

	for _, d := range []*towerreg{a, b} {
		fi, err := os.Stat(runtimeFile(d.dir))
		if err != nil {
			t.Fatalf("no runtime file for the daemon on %s: %v", d.Addr, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("runtime file mode %v, want 0600", fi.Mode().Perm())
		}
	}

	// token with no --addr: each client reaches the daemon of its own
	// XDG directories.
	if got := tokenTarget(t, envA, repoBusybox); !strings.HasPrefix(got, a.Addr+"/") {
		t.Errorf("token in A's directories: targetImage %s, want one on %s", got, a.Addr)
	}
	if got := tokenTarget(t, envB, repoBusybox); !strings.HasPrefix(got, b.Addr+"/") {
		t.Errorf("token in B's directories: targetImage %s, want one on %s", got, b.Addr)
	}
	// Without its runtime file, A's client still has the config.
	saved, err := os.ReadFile(runtimeFile(dirA))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(runtimeFile(dirA))
	if got := tokenTarget(t, envA, repoBusybox); !strings.HasPrefix(got, a.Addr+"/") {
		t.Errorf("token from A's config: targetImage %s, want one on %s", got, a.Addr)
	}
	if err := os.WriteFile(runtimeFile(dirA), saved, 0o600); err != nil {
		t.Fatal(err)
	}

	// dash --no-tui with no --addr: it streams B's events, so B's token
	// shows up there and A's does not.
	ctx, cancel := context.WithCancel(t.Context())
	dash := exec.CommandContext(ctx, bin, "dash", "--no-tui")
	dash.Env = envB
	var out, errOut syncBuffer
	dash.Stdout, dash.Stderr = &out, &errOut
	dash.WaitDelay = 5 * time.Second
	if err := dash.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); dash.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "TokenIssued ") {
		if time.Now().After(deadline) {
			t.Fatalf("dash --no-tui printed no TokenIssued of B's\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
		tokenTarget(t, envB, repoBusybox)
		time.Sleep(200 * time.Millisecond)
	}
	before := strings.Count(out.String(), "TokenIssued ")
	tokenTarget(t, envA, repoBusybox)
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(out.String(), "TokenIssued "); n != before {
		t.Errorf("dash in B's directories printed a token of A's:\n%s", out.String())
	}
	cancel()
	dash.Wait()

	// B killed: its file stays, and is ignored. B's client falls back to
	// its config, here pointed at A.
	b.kill9(t)
	if _, err := os.Stat(runtimeFile(dirB)); err != nil {
		t.Fatalf("the SIGKILLed daemon's file is gone (%v): the test proves nothing", err)
	}
	writeConfig(t, dirB, "listen: "+a.Addr+"\n")
	if got := tokenTarget(t, envB, repoBusybox); !strings.HasPrefix(got, a.Addr+"/") {
		t.Errorf("token after B was killed: targetImage %s, want A's %s from the config", got, a.Addr)
	}
	// With neither file nor config, the error names where it looked.
	writeConfig(t, dirB, "")
	_, stderr, err := runCmd(t, envB, bin, "token", "--config", filepath.Join(dirB, "none.yml"), repoBusybox)
	if strings.Contains(stderr, b.Addr) || (err != nil && !strings.Contains(stderr, "(from the default")) {
		t.Errorf("token with only B's stale file: err %v, stderr %s; want the default address tried, not B's", err, stderr)
	}

	// A stopped: it removes its file.
	a.stop(t)
	if _, err := os.Stat(runtimeFile(dirA)); !os.IsNotExist(err) {
		t.Errorf("the runtime file outlives the daemon that stopped: %v", err)
	}
}
