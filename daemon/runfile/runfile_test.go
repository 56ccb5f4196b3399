package runfile_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/runfile"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "towerreg", runfile.Name)
	want := runfile.Info{Pid: 42, Local: "127.0.0.1:9191", Public: []string{"0.0.0.0:9443"},
		Tunnel: "https://reg.ngrok.app", Version: "dev", Started: time.Unix(1700000000, 0).UTC()}
	if err := runfile.Write(path, want); err != nil {
		t.Fatal(err)
	}
	// Rewritten, as when the tunnel comes up: still one file.
	want.Tunnel = "https://other.ngrok.app"
	if err := runfile.Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := runfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pid != want.Pid || got.Local != want.Local || got.Tunnel != want.Tunnel || !got.Started.Equal(want.Started) ||
		len(got.Public) != 1 || got.Public[0] != want.Public[0] {
		t.Errorf("Read = %+v, want %+v", got, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want the file alone (no temporary left)", len(entries))
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		di, _ := os.Stat(filepath.Dir(path))
		if di.Mode().Perm() != 0o700 {
			t.Errorf("directory mode %v, want 0700", di.Mode().Perm())
		}
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), runfile.Name)
	for _, body := range []string{"", "{", `{"pid":0,"local":"127.0.0.1:1"}`, `{"pid":12}`} {
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := runfile.Read(path); err == nil {
			t.Errorf("Read(%q) = nil error", body)
		}
	}
}

// TestRemoveOwnOnly: a daemon removes its own file, not the one a second
// daemon with the same directories wrote since.
func TestRemoveOwnOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), runfile.Name)
	if err := runfile.Write(path, runfile.Info{Pid: 2, Local: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if err := runfile.Remove(path, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the other daemon's file was removed: %v", err)
	}
	if err := runfile.Remove(path, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the daemon's own file is still there: %v", err)
	}
	if err := runfile.Remove(path, 2); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
}

func TestDir(t *testing.T) {
	existing, missing, state := t.TempDir(), filepath.Join(t.TempDir(), "nope"), t.TempDir()
	for _, tt := range []struct {
		set     bool
		runtime string
		want    string
	}{
		{true, missing, missing}, // set in the environment: used, created on write
		{false, existing, existing},
		{false, missing, state}, // adrg/xdg's /run/user/UID guess, absent
	} {
		if got := runfile.Dir(tt.set, tt.runtime, state); got != tt.want {
			t.Errorf("Dir(%v, %s) = %s, want %s", tt.set, tt.runtime, got, tt.want)
		}
	}
}

func TestPathFollowsRuntimeDir(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", a)
	pa := runfile.Path()
	t.Setenv("XDG_RUNTIME_DIR", b)
	pb := runfile.Path()
	if !strings.HasPrefix(pa, a) || !strings.HasPrefix(pb, b) || pa == pb {
		t.Errorf("Path = %s then %s, want one in each runtime dir", pa, pb)
	}
}

func TestFind(t *testing.T) {
	var addr string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == admin.StatusPath {
			json.NewEncoder(w).Encode(map[string]string{"listen": addr})
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	addr = strings.TrimPrefix(srv.URL, "http://")
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	dead := exec.Command(os.Args[0], "-test.run=^$")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		info runfile.Info
		ok   bool
		why  string
	}{
		{"live", runfile.Info{Pid: os.Getpid(), Local: addr}, true, ""},
		{"process gone", runfile.Info{Pid: dead.Process.Pid, Local: addr}, false, "is gone"},
		{"nothing listens", runfile.Info{Pid: os.Getpid(), Local: closed}, false, "nothing answers"},
		{"something else listens", runfile.Info{Pid: os.Getpid(), Local: strings.TrimPrefix(other.URL, "http://")}, false, "nothing answers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), runfile.Name)
			if err := runfile.Write(path, tt.info); err != nil {
				t.Fatal(err)
			}
			info, ok, why := runfile.Find(t.Context(), path)
			if ok != tt.ok || !strings.Contains(why, tt.why) {
				t.Errorf("Find = %v (%s), want %v (%s)", ok, why, tt.ok, tt.why)
			}
			if ok && info.Local != tt.info.Local {
				t.Errorf("Local = %s", info.Local)
			}
		})
	}
	if _, ok, why := runfile.Find(t.Context(), filepath.Join(t.TempDir(), runfile.Name)); ok || !strings.Contains(why, "no ") {
		t.Errorf("missing file: %v %s", ok, why)
	}
}
