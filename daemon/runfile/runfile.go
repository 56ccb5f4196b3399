// Package runfile is how the clients of a running daemon find it: `up`
// writes its addresses and pid to a file in the XDG runtime directory, and
// `token`, `dash` and every other client read it.
//
// The file is written atomically (a temporary file renamed over it),
// readable by its owner only, and removed when the daemon exits. A file
// left by a daemon that was killed names a process that is gone, or an
// address where nothing answers: Find ignores it.
package runfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/adrg/xdg"

	"github.com/tower-reg/tower-reg/daemon/admin"
)

// Info is what the file holds.
type Info struct {
	// Pid is the daemon's process id.
	Pid int `json:"pid"`
	// Local is the address of the local handler (the registry and the
	// admin API): what clients dial.
	Local string `json:"local"`
	// Public lists the plain listeners of the public handler
	// (--public-listen).
	Public []string `json:"public,omitempty"`
	// Tunnel is the tunnel's public URL while it is up.
	Tunnel  string    `json:"tunnel,omitempty"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
}

// Name is the file's name in its directory.
const Name = "daemon.json"

// Path is where the daemon of this user and these XDG directories writes
// its file: $XDG_RUNTIME_DIR/towerreg/daemon.json, or in the state
// directory where there is no runtime directory (a Linux session without
// one, where adrg/xdg names /run/user/UID all the same).
func Path() string {
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		return filepath.Join(rt, "towerreg", Name)
	}
	return filepath.Join(Dir(false, xdg.RuntimeDir, xdg.StateHome), "towerreg", Name)
}

// Dir chooses the base directory: the runtime directory when the
// environment sets it or it exists, else the state directory.
func Dir(runtimeSet bool, runtime, state string) string {
	if runtimeSet {
		return runtime
	}
	if fi, err := os.Stat(runtime); err == nil && fi.IsDir() {
		return runtime
	}
	return state
}

// Write writes info to path atomically, mode 0600, creating its directory
// (0700) if need be.
func Write(path string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("runtime file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+Name+".*")
	if err != nil {
		return fmt.Errorf("runtime file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		tmp.Close()
		return fmt.Errorf("runtime file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("runtime file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("runtime file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("runtime file: %w", err)
	}
	return nil
}

// Read reads the file at path.
func Read(path string) (Info, error) {
	var info Info
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	if info.Pid <= 0 || info.Local == "" {
		return info, fmt.Errorf("%s: no pid or no local address", path)
	}
	return info, nil
}

// Remove removes the file at path if it is still the one of process pid:
// a second daemon started with the same directories may have written its
// own since.
func Remove(path string, pid int) error {
	info, err := Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && info.Pid != pid {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Find reads the file at path and returns its Info if its process is
// alive and a towerreg-dev answers at its local address. ok is false, with
// a reason for a -v line, when the file is missing or stale.
func Find(ctx context.Context, path string) (info Info, ok bool, why string) {
	info, err := Read(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return info, false, "no " + path
		}
		return info, false, err.Error()
	}
	if !Alive(info.Pid) {
		return info, false, fmt.Sprintf("%s is stale: process %d is gone", path, info.Pid)
	}
	if err := answers(ctx, info.Local); err != nil {
		return info, false, fmt.Sprintf("%s is stale: nothing answers at %s: %v", path, info.Local, err)
	}
	return info, true, ""
}

// answers checks that a towerreg-dev serves its status at addr.
func answers(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+admin.StatusPath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st struct {
		Listen string `json:"listen"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Listen == "" {
		return errors.New("not a towerreg-dev status")
	}
	if !strings.EqualFold(st.Listen, addr) {
		return fmt.Errorf("a towerreg-dev listening on %s answers", st.Listen)
	}
	return nil
}
