package e2e

// What `go install github.com/tower-reg/tower-reg/cmd/towerreg-dev@VERSION`
// gives: the module as git holds it, without the entry binaries that
// `make layer` builds (payload/.platforms/.gitignore keeps them out of
// git, so out of the module zip too).

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestInstallWithoutEntries builds the daemon from the files git tracks
// (what a module zip holds), as `go install …@VERSION` does, and checks
// what the README's "Installing" says of that build: it starts, warns once
// that the default layer has no entry binary and says how to get them,
// still appends the default layer (/foo.txt), and leaves the image's
// entrypoint alone.
func TestInstallWithoutEntries(t *testing.T) {
	gitBin, goBin := need(t, "git"), need(t, "go")
	u, _ := startUpstreamWithImages(t)
	root := repoRoot(t)

	// The tracked files, as they are in the work tree now.
	ls := exec.Command(gitBin, "ls-files", "-z")
	ls.Dir = root
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	src := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted and not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(src, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(src, entryPayload)); err == nil {
		t.Fatalf("%s is tracked by git: the module would carry it", entryPayload)
	}

	bin := filepath.Join(t.TempDir(), "towerreg-dev")
	build := exec.Command(goBin, "build", "-trimpath", "-o", bin, "./cmd/towerreg-dev")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	start := time.Now()
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build from the tracked files: %v\n%s", err, b)
	}
	t.Logf("built towerreg-dev from the tracked files in %v", time.Since(start).Round(time.Millisecond))

	d := startDaemonBin(t, bin, t.TempDir(), func(addr string) ([]string, error) {
		return []string{"up", "--no-tui", "--listen", addr, "--default-registry", u.Host}, nil
	})

	upstreamImg, err := remote.Image(u.tag(t, repoEcho))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(d.ref(repoEcho), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	proxied, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull through the daemon: %v", err)
	}
	want, err := upstreamImg.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got, err := proxied.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Config.Entrypoint, want.Config.Entrypoint) || !slices.Equal(got.Config.Cmd, want.Config.Cmd) {
		t.Errorf("Entrypoint %q Cmd %q, want the image's own %q %q", got.Config.Entrypoint, got.Config.Cmd, want.Config.Entrypoint, want.Config.Cmd)
	}
	for _, e := range got.Config.Env {
		if strings.HasPrefix(e, entryVar+"=") {
			t.Errorf("Env has %s with no entry to read it", e)
		}
	}
	if n, m := len(got.RootFS.DiffIDs), len(want.RootFS.DiffIDs); n != m+1 {
		t.Errorf("%d layers, want the image's %d plus the default layer", n, m)
	}

	d.stop(t)
	logs, err := os.ReadFile(d.proc.logPath)
	if err != nil {
		t.Fatal(err)
	}
	const warning = "the default layer has no entry binary for some platforms"
	if c := bytes.Count(logs, []byte(warning)); c != 1 {
		t.Errorf("the warning %q is in the log %d times, want once:\n%s", warning, c, logs)
	}
	if !bytes.Contains(logs, []byte("make release")) || !bytes.Contains(logs, []byte("linux_amd64")) || !bytes.Contains(logs, []byte("linux_arm64")) {
		t.Errorf("the warning names neither both platforms nor where the full build is:\n%s", logs)
	}
}
