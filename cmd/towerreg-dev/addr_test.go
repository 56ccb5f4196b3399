package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/runfile"
)

// fakeStatus serves a towerreg-dev status that names its own address.
func fakeStatus(t *testing.T) string {
	t.Helper()
	var addr string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != admin.StatusPath {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"listen": addr})
	}))
	t.Cleanup(srv.Close)
	addr = strings.TrimPrefix(srv.URL, "http://")
	return addr
}

// deadPid is the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// TestDaemonAddr checks the order in which a client finds its daemon:
// --addr, the runtime file of a live daemon, the config's listen, the
// default; and that a stale runtime file is skipped.
func TestDaemonAddr(t *testing.T) {
	live := fakeStatus(t)
	const cfgAddr = "127.0.0.1:9555"
	tests := []struct {
		name     string
		flag     string
		file     *runfile.Info // nil: no runtime file
		config   string        // the config file's contents; "" for none
		want     string
		wantFrom string
	}{
		{name: "flag first", flag: "127.0.0.1:7", file: &runfile.Info{Pid: os.Getpid(), Local: live}, config: "listen: " + cfgAddr,
			want: "127.0.0.1:7", wantFrom: "--addr"},
		{name: "live file over config", file: &runfile.Info{Pid: os.Getpid(), Local: live}, config: "listen: " + cfgAddr,
			want: live, wantFrom: "daemon.json"},
		{name: "config when no file", config: "listen: " + cfgAddr, want: cfgAddr, wantFrom: "listen in"},
		{name: "default", want: config.DefaultListen, wantFrom: "the default"},
		{name: "dead process", file: &runfile.Info{Pid: deadPid(t), Local: live}, config: "listen: " + cfgAddr,
			want: cfgAddr, wantFrom: "listen in"},
		{name: "live process, nothing answers", file: &runfile.Info{Pid: os.Getpid(), Local: closedAddr(t)},
			want: config.DefaultListen, wantFrom: "the default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			runPath := filepath.Join(dir, "run", "towerreg", runfile.Name)
			cfgPath := filepath.Join(dir, "config.yml")
			if tt.file != nil {
				if err := runfile.Write(runPath, *tt.file); err != nil {
					t.Fatal(err)
				}
			}
			if tt.config != "" {
				if err := os.WriteFile(cfgPath, []byte(tt.config+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, from, err := daemonAddr(t.Context(), tt.flag, cfgPath, runPath)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !strings.Contains(from, tt.wantFrom) {
				t.Errorf("daemonAddr = %q from %q, want %q from %q", got, from, tt.want, tt.wantFrom)
			}
		})
	}
}

// TestTokenFindsDaemonInConfig runs `token` with no --addr against a
// daemon whose address is only in the config: the error names that
// address, not the default.
func TestTokenFindsDaemonInConfig(t *testing.T) {
	addr := closedAddr(t)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte("listen: "+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"token", "--config", cfg, "busybox"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the daemon at "+addr+" (from listen in "+cfg) {
		t.Errorf("error = %v, want 'cannot reach the daemon at %s (from listen in ...'", err, addr)
	}
}
