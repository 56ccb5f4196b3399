package e2e

// Hot reload end to end: `towerreg-dev up --layer DIR` and a real podman.
// An edit of the layer directory must reach the next `podman run` of the
// same tag, with no restart and nothing else typed.

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReloadPodmanRun(t *testing.T) {
	pm := newPodman(t)
	u, _ := startUpstreamWithImages(t)

	dir := amd64EntryLayer(t)
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

// TestReloadDevLoop is the FUSE developer's loop of the README, timed: a
// build lands a new LAYER/usr/bin/fusion, and `podman run --pull=always`
// of the same tag, started at once, runs it. The clock starts when the
// file is in place (the build's last write) and stops when the container
// prints the new build. The run's pull comes before the reload is done
// (the watcher's quiet window, then the re-pack): the daemon must hold
// it until the new generation serves, so the first run is the new build,
// every time.
//
// The "binary" is a shell script padded with 9 MiB of random bytes after
// its `exit`: the size of a real fusion build (the pack costs what the
// bytes cost), without a Go build in the test.
func TestReloadDevLoop(t *testing.T) {
	pm := newPodman(t)
	u, _ := startUpstreamWithImages(t)

	dir := amd64EntryLayer(t)
	pad := make([]byte, 9<<20)
	if _, err := rand.Read(pad); err != nil {
		t.Fatal(err)
	}
	fusion := filepath.Join(dir, "usr/bin/fusion")
	if err := os.MkdirAll(filepath.Dir(fusion), 0o755); err != nil {
		t.Fatal(err)
	}
	// build writes the binary the way `go build -o` does: the output file
	// is written in place (truncated, then written), not renamed over.
	build := func(n int) {
		t.Helper()
		data := append([]byte(fmt.Sprintf("#!/bin/sh\necho fusion build %d\nexit 0\n", n)), pad...)
		if err := os.WriteFile(fusion, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build(0)
	d := startDaemon(t, "--default-registry", u.Host, "--layer", dir)
	image := d.ref(repoBusybox)
	run := func() string {
		t.Helper()
		out, errOut, err := runCmd(t, pm.env, pm.bin, pm.args("run", "--rm", "--quiet", "--tls-verify=false", "--pull=always", image, "fusion")...)
		if err != nil {
			t.Fatalf("podman run %s fusion: %v\n%s%s", image, err, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	if got := run(); got != "fusion build 0" {
		t.Fatalf("first run: %q", got)
	}
	// One run with nothing changed: what --pull=always and the run cost.
	start := time.Now()
	if got := run(); got != "fusion build 0" {
		t.Fatalf("second run: %q", got)
	}
	t.Logf("podman run --pull=always, layer unchanged: %v", time.Since(start).Round(time.Millisecond))

	const builds = 5
	var times []time.Duration
	for n := 1; n <= builds; n++ {
		build(n)
		start := time.Now()
		if got, want := run(), fmt.Sprintf("fusion build %d", n); got != want {
			t.Fatalf("build %d: the run started right after the build printed %q, want %q: the pull did not wait for the reload", n, got, want)
		}
		el := time.Since(start)
		times = append(times, el)
		t.Logf("build %d: written to printed in %v", n, el.Round(time.Millisecond))
	}
	slices.Sort(times)
	t.Logf("the developer's loop, build written to new build printed: median %v, min %v, max %v over %d builds, every first run the new build",
		times[builds/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[builds-1].Round(time.Millisecond), builds)
}

// amd64EntryLayer is a new layer directory holding the amd64 entry, built
// by `make layer`, and nothing else.
func amd64EntryLayer(t *testing.T) string {
	t.Helper()
	entry, err := os.ReadFile(filepath.Join(repoRoot(t), entryPayload))
	if err != nil {
		t.Fatalf("the amd64 entry (run `make layer`): %v", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".platforms/linux_amd64/.towerreg/entry"), string(entry))
	if err := os.Chmod(filepath.Join(dir, ".platforms/linux_amd64/.towerreg/entry"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
