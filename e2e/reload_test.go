package e2e

// Hot reload end to end: `towerreg-dev up --layer DIR` and a real podman.
// An edit of the layer directory must reach the next `podman run` of the
// same tag, with no restart and nothing else typed.

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReloadPodmanRun(t *testing.T) {
	pm := newPodman(t)
	u, _ := startUpstreamWithImages(t)

	dir := t.TempDir()
	entry, err := os.ReadFile(filepath.Join(repoRoot(t), entryPayload))
	if err != nil {
		t.Fatalf("the amd64 entry (run `make layer`): %v", err)
	}
	writeLayer := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// As editors save: a temporary file renamed over the old one.
		tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
		if err := os.WriteFile(tmp, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	writeLayer(".platforms/linux_amd64/.towerreg/entry", entry, 0o755)
	writeLayer("foo.txt", []byte("before the edit\n"), 0o644)
	d := startDaemon(t, "--default-registry", u.Host, "--layer", dir)

	image := d.ref(repoBusybox)
	run := func() string {
		t.Helper()
		// --pull=always: the tag is in podman's store after the first run,
		// and a developer's loop re-pulls the same way.
		out, errOut, err := runCmd(t, pm.env, pm.bin, pm.args("run", "--rm", "--quiet", "--tls-verify=false", "--pull=always", image, "cat", "/foo.txt")...)
		if err != nil {
			t.Fatalf("podman run %s: %v\n%s%s", image, err, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	digest := func() string {
		t.Helper()
		resp, body := do(t, http.MethodHead, d.url("/v2/test/busybox/manifests/latest"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD manifest: %s %s", resp.Status, body)
		}
		return resp.Header.Get("Docker-Content-Digest")
	}

	if got := run(); got != "before the edit" {
		t.Fatalf("first run: /foo.txt = %q", got)
	}
	before := digest()
	writeLayer("foo.txt", []byte("after the edit\n"), 0o644)
	deadline := time.Now().Add(30 * time.Second)
	for digest() == before {
		if time.Now().After(deadline) {
			t.Fatal("the tag's digest did not change within 30s of the edit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := run(); got != "after the edit" {
		t.Fatalf("after the edit: /foo.txt = %q, want the new content with no restart", got)
	}
	// The entry still chains to the image's command after the reload.
	out, errOut, err := runCmd(t, pm.env, pm.bin, pm.args("run", "--rm", "--quiet", "--tls-verify=false", image, "sh", "-c", "echo $((6*7))")...)
	if err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("podman run sh -c: %q %v\n%s", out, err, errOut)
	}
}
