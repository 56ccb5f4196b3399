package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Processes

// Timeouts. They bound a hung tool; none is expected to come close.
const (
	// A server answering GET /v2/. The daemon answers once it has packed
	// its layer, which a -race build on two loaded cores took over 30 s
	// to do.
	startTimeout   = 2 * time.Minute
	commandTimeout = 3 * time.Minute  // one client command
	stopTimeout    = 15 * time.Second // a server exiting after SIGTERM
)

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
	return startProcessAttr(name, logPath, env, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, bin, args...)
}

// startProcessGroup is startProcess with the server leading a process
// group of its own, for servers that start helpers (dockerd, containerd):
// killGroup then ends the helpers that outlived it too.
func startProcessGroup(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	return startProcessAttr(name, logPath, env, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}, bin, args...)
}

// killGroup sends SIGKILL to the process group that startProcessGroup
// made, whatever is left of it; a group already gone is no error.
func (p *process) killGroup() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func startProcessAttr(name, logPath string, env []string, attr *syscall.SysProcAttr, bin string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	// attr sets Pdeathsig: if the test binary dies (a -timeout panic),
	// take the server with it rather than leave it listening. Pdeathsig
	// follows the thread that started the child; the Go runtime only ends
	// threads that a goroutine locked, which nothing here does.
	cmd.SysProcAttr = attr
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
			// A registry with auth answers the anonymous ping with a 401
			// challenge: it is up all the same.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "" {
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
// GET http://ADDR/v2/ answers 200 (or a 401 challenge). args gets the address; it retries when
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
