package e2e

// Crash safety: the real binary is killed with SIGKILL in the middle of a
// layer reload and of a container token issue, then started again over
// the same directories. What it had handed out comes back, and nothing
// half-written is served: skopeo checks every blob against its digest.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// kill9 ends the daemon with SIGKILL: no shutdown, no flush, no cleanup.
func (d *towerreg) kill9(tb testing.TB) {
	tb.Helper()
	d.stopped = true
	d.proc.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.proc.exited:
	case <-time.After(stopTimeout):
		tb.Fatal("towerreg-dev did not die after SIGKILL")
	}
	if sig, ok := killedBy(d.proc.waitErr); !ok || sig != syscall.SIGKILL {
		tb.Fatalf("towerreg-dev ended with %v, not by the SIGKILL", d.proc.waitErr)
	}
}

// checkStore hashes every blob of the daemon's content store: each must
// hash to its name, whatever the crash interrupted.
func (d *towerreg) checkStore(tb testing.TB) int {
	tb.Helper()
	dir := filepath.Join(d.dir, "xdg_cache_home", "towerreg", "store", "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatalf("store: %v", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != e.Name() {
			tb.Errorf("store blob %s holds bytes that hash to %x: a half-written blob", e.Name(), sum)
		}
	}
	return len(entries)
}

// TestCrashDuringReload: the layer directory is rewritten in a loop (a
// 4 MiB file and foo.txt) so that reloads pack all the time, and the
// daemon is killed mid-way. After a restart, a digest handed out before
// the crash still pulls whole, and a pull by tag carries the directory as
// it is now.
func TestCrashDuringReload(t *testing.T) {
	u, _ := startUpstreamWithImages(t)
	sk := newSkopeo(t)
	layerDir := t.TempDir()
	entry, err := os.ReadFile(filepath.Join(repoRoot(t), entryPayload))
	if err != nil {
		t.Fatalf("the amd64 entry (run `make layer`): %v", err)
	}
	save := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(layerDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Error(err)
			return
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, data, mode); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Error(err)
		}
	}
	big := make([]byte, 4<<20)
	save(".platforms/linux_amd64/.towerreg/entry", entry, 0o755)
	save("foo.txt", []byte("edit 0\n"), 0o644)
	save("big.bin", big, 0o644)

	dir := t.TempDir()
	d := startDaemonIn(t, dir, "--default-registry", u.Host, "--layer", layerDir)
	head := func(d *towerreg) string {
		resp, body := do(t, http.MethodHead, d.url("/v2/test/busybox/manifests/latest"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD: %s %s", resp.Status, body)
		}
		return resp.Header.Get("Docker-Content-Digest")
	}
	before := head(d)

	// Edit in a loop, each edit followed by its reload (a 50 ms quiet
	// window, then the pack), timed; then one more edit, and the kill
	// halfway through its reload, whatever the machine's speed.
	edit := func(i int) {
		rand.Read(big[:4096])
		save("big.bin", big, 0o644)
		save("foo.txt", []byte("edit "+strings.Repeat("x", i)+"\n"), 0o644)
	}
	digests := map[string]bool{before: true}
	prev := before
	var cycle time.Duration
	for i := 1; i <= 3; i++ {
		start := time.Now()
		edit(i)
		deadline := start.Add(30 * time.Second)
		for {
			if dg := head(d); dg != prev {
				prev, digests[dg] = dg, true
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edit %d: no new generation within 30 s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cycle = time.Since(start)
	}
	edit(4)
	time.Sleep(cycle * 6 / 10)
	d.kill9(t)
	t.Logf("killed %v after the 4th edit; a reload took %v; %d generations handed out", cycle*6/10, cycle, len(digests))

	final := []byte("after the crash\n")
	save("foo.txt", final, 0o644)
	d2 := startDaemonIn(t, dir, "--default-registry", u.Host, "--layer", layerDir)
	if n := d2.checkStore(t); n == 0 {
		t.Fatal("the store is empty after the restart")
	}
	// Every digest handed out before the crash still pulls whole.
	for dg := range digests {
		sk.copyToOCI(t, d2.ref("test/busybox@"+dg), false)
	}
	// A pull by tag has the directory as it is now.
	img := layoutImage(t, sk.copyToOCI(t, d2.ref(repoBusybox), false))
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if got := layerFiles(t, ls[len(ls)-1])["foo.txt"].Body; !bytes.Equal(got, final) {
		t.Fatalf("after the restart, /foo.txt is %q, want %q", got, final)
	}
}

// TestCrashDuringTokenIssue: the daemon is killed while it downloads a
// token's layer from a location that sends half of it and stalls. After a
// restart, the token issued before works, the interrupted one was never
// issued, no half-downloaded blob is in the store, and the same request
// then succeeds.
func TestCrashDuringTokenIssue(t *testing.T) {
	u, _ := startUpstreamWithImages(t)
	sk := newSkopeo(t)
	bin := daemonBinary(t)
	layerDir := filepath.Join(t.TempDir(), "layer")
	if err := os.MkdirAll(layerDir, 0o755); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 2<<20)
	rand.Read(payload) // incompressible: the gzip is as big
	if err := os.WriteFile(filepath.Join(layerDir, "data.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	var packed struct {
		Location   string `json:"location"`
		GzipDigest string `json:"gzipDigest"`
		GzipSize   int64  `json:"gzipSize"`
		TarDigest  string `json:"tarDigest"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, os.Environ(), bin, "pack", "--layer", layerDir, "--out", t.TempDir())), &packed); err != nil {
		t.Fatal(err)
	}
	blob, err := os.ReadFile(strings.TrimPrefix(packed.Location, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	halfSent := make(chan struct{}, 1)
	var stall atomic.Bool
	stall.Store(true)
	loc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stall.Load() {
			w.Write(blob)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:len(blob)/2])
		http.NewResponseController(w).Flush()
		select {
		case halfSent <- struct{}{}:
		default:
		}
		<-r.Context().Done() // until the daemon dies
	}))
	t.Cleanup(loc.Close)

	dir := t.TempDir()
	d := startDaemonIn(t, dir, "--default-registry", u.Host)
	issue := func(d *towerreg) (int, []byte) {
		body, _ := json.Marshal(map[string]any{
			"containerImage": repoBusybox,
			"containerConfig": map[string]any{"layers": []any{map[string]any{
				"location": loc.URL + "/layer.tar.gz", "gzipDigest": packed.GzipDigest,
				"gzipSize": packed.GzipSize, "tarDigest": packed.TarDigest}}},
		})
		resp, err := http.Post(d.url("/container-token"), "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}

	// A token issued before the crash.
	var first struct{ ContainerToken, TargetImage string }
	if err := json.Unmarshal([]byte(mustRun(t, os.Environ(), bin, "token", "--addr", d.Addr, repoBusybox)), &first); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		status, _ := issue(d)
		done <- status
	}()
	select {
	case <-halfSent:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon never fetched the layer")
	}
	d.kill9(t)
	if status := <-done; status == http.StatusOK {
		t.Fatal("a token was issued for a layer that never arrived whole")
	}

	d2 := startDaemonIn(t, dir, "--default-registry", u.Host)
	d2.checkStore(t)
	if _, err := os.Stat(filepath.Join(d2.dir, "xdg_cache_home", "towerreg", "store", "blobs", "sha256",
		strings.TrimPrefix(packed.GzipDigest, "sha256:"))); err == nil {
		t.Fatal("the half-downloaded layer is in the store under its digest")
	}
	// The token from before the crash pulls whole.
	sk.copyToOCI(t, d2.Addr+strings.TrimPrefix(first.TargetImage, d.Addr), false)
	// The state has exactly that token: the interrupted one left nothing.
	entries, err := os.ReadDir(filepath.Join(d2.stateDir(), "towerreg", "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	var tokens int
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !strings.Contains(e.Name(), "tmp") {
			tokens++
		}
	}
	if tokens != 1 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("token state after the crash: %v, want the one token issued", names)
	}
	// And the same request goes through now that the location answers.
	stall.Store(false)
	status, body := issue(d2)
	if status != http.StatusOK {
		t.Fatalf("token after the restart: %d %s", status, body)
	}
	var again struct{ TargetImage string }
	if err := json.Unmarshal(body, &again); err != nil {
		t.Fatal(err)
	}
	sk.copyToOCI(t, again.TargetImage, false)
}
