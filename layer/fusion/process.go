package fusion

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// ServerEnv marks the FUSE server process; its value is the descriptor on
// which the server reports readiness. Start sets it for its child only:
// the image's program never sees it.
const ServerEnv = "TOWERREG_FUSION_SERVER"

// startedEnv passes the entry's start time (Unix nanoseconds) to the
// server, which logs the start-up as the user sees it: from the entry's
// start to the mount being ready.
const startedEnv = "TOWERREG_FUSION_STARTED"

// readyTimeout bounds the whole start-up, S3 check included. minio-go
// retries an endpoint that does not answer; this stops that in time for a
// clear error.
const readyTimeout = 60 * time.Second

// serverMargin is how much sooner than the entry the server gives up on
// its start-up: time for it to write its reason down the pipe.
const serverMargin = 5 * time.Second

// okLine is what the server writes once the mount serves; anything else
// it writes is the reason it could not.
const okLine = "ok"

// IsServer reports whether this process is the FUSE server Start started.
func IsServer(getenv func(string) string) bool { return getenv(ServerEnv) != "" }

// Start starts the FUSE server as a child of this process, from the same
// binary, and returns once the buckets are mounted, or with an *Error
// saying why they are not. The caller then execs the image's program,
// which inherits the server as its child; the server has its own session,
// so a terminal's signals for the program's process group do not reach it,
// and it runs until the program (the container) ends.
func Start(ctx context.Context, env []string, started time.Time) error {
	exe, err := os.Executable()
	if err != nil {
		return &Error{Msg: fmt.Sprintf("cannot find the entry binary to start the FUSE server: %v", err), Err: err}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("readiness pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Args = []string{"towerreg-fusion"}
	// Descriptor 3 is ExtraFiles[0].
	cmd.Env = append(env, ServerEnv+"=3", startedEnv+"="+strconv.FormatInt(started.UnixNano(), 10))
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr // warnings while serving; stdin and stdout are /dev/null
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return &Error{Msg: fmt.Sprintf("cannot start the FUSE server: %v", err), Err: err}
	}
	w.Close()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()
	msg, err := io.ReadAll(io.LimitReader(r, 4096))
	line := strings.TrimSpace(string(msg))
	if err == nil && line == okLine {
		// Not waited for: it outlives this process image.
		return cmd.Process.Release()
	}
	_ = cmd.Process.Kill()
	state, _ := cmd.Process.Wait()
	switch {
	case err != nil && ctx.Err() != nil:
		return &Error{Msg: fmt.Sprintf("the FUSE mount was not ready after %s; check that S3 (AWS_ENDPOINT_URL) answers", readyTimeout), Err: ctx.Err()}
	case line == "":
		return &Error{Msg: fmt.Sprintf("the FUSE server exited before the mount was ready (%v)", state), Err: err}
	default:
		return &Error{Msg: line}
	}
}

// Serve is the FUSE server's main: it mounts, tells the entry through the
// readiness descriptor, and serves until the entry's process (the image's
// program) is gone or it is told to stop. Its status is the process's.
func Serve(getenv func(string) string, stderr io.Writer) int {
	fd, err := strconv.Atoi(getenv(ServerEnv))
	if err != nil || fd < 3 {
		fmt.Fprintf(stderr, "towerreg-fusion: %s=%q is not a descriptor\n", ServerEnv, getenv(ServerEnv))
		return 2
	}
	ready := os.NewFile(uintptr(fd), "ready")
	report := func(line string) {
		_, _ = ready.WriteString(strings.ReplaceAll(line, "\n", " ") + "\n")
		ready.Close()
	}
	cfg, err := FromEnv(getenv)
	if err != nil {
		report(err.Error())
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("component", "fusion")
	parent := os.Getppid()

	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()
	// A terminal hang-up belongs to the program, not to the server.
	signal.Ignore(syscall.SIGHUP)
	bg, cancelBg := context.WithCancel(ctx)
	defer cancelBg()

	start := time.Now()
	if ns, err := strconv.ParseInt(getenv(startedEnv), 10, 64); err == nil {
		start = time.Unix(0, ns)
	}
	// The server's own bound ends before the entry's, so that the entry
	// hears the server's reason ("cannot reach S3 at ...") rather than
	// only that the mount was not ready in time.
	checkCtx, cancelCheck := context.WithDeadline(ctx, start.Add(readyTimeout-serverMargin))
	server, err := Mount(checkCtx, bg, cfg, logger)
	cancelCheck()
	if err != nil {
		report(err.Error())
		return 1
	}
	logger.Info("mounted", "config", cfg, "took", time.Since(start).Round(time.Millisecond))
	report(okLine)

	served := make(chan struct{})
	go func() {
		server.Wait()
		close(served)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-served:
			return 0 // unmounted from outside
		case <-ctx.Done():
			return unmount(server, cfg, logger, served)
		case <-tick.C:
			// The image's program has the entry's PID: a new parent
			// means it ended (outside a container, where nothing else
			// would stop the server).
			if os.Getppid() != parent {
				return unmount(server, cfg, logger, served)
			}
		}
	}
}

func unmount(server *fuse.Server, cfg Config, logger *slog.Logger, served <-chan struct{}) int {
	if err := Unmount(server, cfg.Mountpoint); err != nil {
		logger.Warn("unmount failed", "err", err)
		return 1
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
	}
	return 0
}
