package daemon_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// live is a daemon serving a layer directory on disk, with its watcher,
// through Serve as `towerreg-dev up --layer DIR` runs it.
type live struct {
	upstream *httptest.Server
	addr     string
	dir      string
	cacheDir string
	d        *daemon.Daemon
	events   *event.Subscription
}

// writeFiles writes name -> content under dir; a name ending in "*" is
// made executable (the star is dropped).
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// atomicSave replaces p as editors do: a temporary file renamed over it.
func atomicSave(t testing.TB, p, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func startLive(t testing.TB, files map[string]string, opts ...func(*daemon.Options)) *live {
	t.Helper()
	l := &live{dir: t.TempDir(), cacheDir: t.TempDir()}
	writeFiles(t, l.dir, files)
	l.upstream = httptest.NewServer(registry.New(registry.Logger(quiet)))
	t.Cleanup(l.upstream.Close)
	bus := event.NewBus(nil)
	l.events = bus.Subscribe(256)
	t.Cleanup(l.events.Close)
	o := daemon.Options{
		Config:      config.Default(),
		CacheDir:    l.cacheDir,
		LayerDir:    l.dir,
		LayerSource: l.dir,
		Keychain:    authn.NewMultiKeychain(),
		Bus:         bus,
	}
	for _, f := range opts {
		f(&o)
	}
	d, err := daemon.New(t.Context(), o)
	if err != nil {
		t.Fatalf("daemon.New: %v", err)
	}
	l.d = d
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	done := make(chan error, 1)
	ctx, stop := context.WithCancel(context.Background())
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l
}

// push writes img to the upstream as repo, "name:tag".
func (l *live) push(t testing.TB, repo string, img remote.Taggable) {
	t.Helper()
	name, tag, _ := strings.Cut(repo, ":")
	regtest.Push(t, host(l.upstream), name, tag, img)
}

func (l *live) ref(repo string) string {
	return l.addr + "/" + pathHost(l.upstream) + "/" + repo
}

// headTag resolves repo:tag through the proxy, as the first request of a
// pull does.
func (l *live) headTag(t testing.TB, repo string) v1.Hash {
	t.Helper()
	d, err := remote.Head(mustRef(t, l.ref(repo)))
	if err != nil {
		t.Fatalf("HEAD %s: %v", repo, err)
	}
	return d.Digest
}

// waitNewDigest polls the tag until its digest is no longer old.
func (l *live) waitNewDigest(t testing.TB, repo string, old v1.Hash) v1.Hash {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if d := l.headTag(t, repo); d != old {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s still %s after 10s: the edit was not picked up", repo, old)
	return v1.Hash{}
}

// waitReload returns the next LayerReloaded event that is a change or an
// error.
func (l *live) waitReload(t testing.TB) event.LayerReloaded {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-l.events.C():
			if r, ok := e.(event.LayerReloaded); ok && (r.Changed || r.Err != "") {
				return r
			}
		case <-timeout:
			t.Fatal("no LayerReloaded event within 10s")
		}
	}
}

// appended returns the files of the last layer of img: the one tower-reg
// appended.
func appended(t testing.TB, img v1.Image) map[string]string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[len(ls)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(b)
	}
}

func (l *live) pull(t testing.TB, ref string) v1.Image {
	t.Helper()
	img, err := remote.Image(mustRef(t, ref))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pull %s: invalid image: %v", ref, err)
	}
	return img
}

func TestHotReload(t *testing.T) {
	l := startLive(t, map[string]string{
		"foo.txt": "v1\n",
		".platforms/linux_amd64/.towerreg/entry*": "#!amd64\n",
	})
	l.push(t, "test/img:latest", randomImage(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}}))
	first := l.pull(t, l.ref("test/img:latest"))
	d1, _ := first.Digest()
	if got := appended(t, first)["foo.txt"]; got != "v1\n" {
		t.Fatalf("foo.txt = %q before the edit", got)
	}
	gen1 := l.d.Generation()

	atomicSave(t, filepath.Join(l.dir, "foo.txt"), "v2\n")
	d2 := l.waitNewDigest(t, "test/img:latest", d1)
	second := l.pull(t, l.ref("test/img@"+d2.String()))
	if got := appended(t, second)["foo.txt"]; got != "v2\n" {
		t.Fatalf("foo.txt = %q after the edit, want v2", got)
	}
	if g := l.d.Generation(); g.Number != gen1.Number+1 || g.ID == gen1.ID {
		t.Fatalf("generation %d (%s) after the edit, was %d (%s): want the next one", g.Number, g.ID, gen1.Number, gen1.ID)
	}
	ev := l.waitReload(t)
	if !ev.Changed || ev.Trigger != "foo.txt" || ev.OldDigest != gen1.Set.Common.GzipDigest.String() ||
		ev.NewDigest != l.d.Generation().Set.Common.GzipDigest.String() || ev.Files == 0 || ev.Bytes == 0 || ev.Err != "" {
		t.Fatalf("LayerReloaded %+v: want changed, trigger foo.txt, old and new common digests, files and bytes", ev)
	}
	if ev.Platforms["linux_amd64"] != l.d.Generation().Set.Platforms["linux_amd64"].GzipDigest.String() {
		t.Fatalf("LayerReloaded platforms %v, want the new linux_amd64 digest", ev.Platforms)
	}

	// The status API reports the generation serving.
	resp, err := http.Get("http://" + l.addr + admin.StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	var st admin.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Layer.Generation != gen1.Number+1 || st.Layer.GzipDigest != ev.NewDigest {
		t.Fatalf("status layer %+v (%v), want generation %d, %s", st.Layer, err, gen1.Number+1, ev.NewDigest)
	}

	// The digest handed out before the reload still serves, manifest and
	// every blob (validate reads them all), with the old content.
	old := l.pull(t, l.ref("test/img@"+d1.String()))
	if got := appended(t, old)["foo.txt"]; got != "v1\n" {
		t.Fatalf("old digest: foo.txt = %q, want v1", got)
	}

	// A directory made after the start, and a file in it.
	writeFiles(t, l.dir, map[string]string{"sub/dir/new.txt": "fresh\n"})
	d3 := l.waitNewDigest(t, "test/img:latest", d2)
	files := appended(t, l.pull(t, l.ref("test/img@"+d3.String())))
	if files["sub/dir/new.txt"] != "fresh\n" || files["foo.txt"] != "v2\n" {
		t.Fatalf("after adding sub/dir/new.txt the layer has %v", keys(files))
	}
	// A file later added to that new directory: it is watched too.
	writeFiles(t, l.dir, map[string]string{"sub/dir/later.txt": "later\n"})
	d4 := l.waitNewDigest(t, "test/img:latest", d3)
	if got := appended(t, l.pull(t, l.ref("test/img@"+d4.String())))["sub/dir/later.txt"]; got != "later\n" {
		t.Fatalf("sub/dir/later.txt = %q", got)
	}

	// A save of the same bytes starts no generation.
	n := l.d.Generation().Number
	atomicSave(t, filepath.Join(l.dir, "foo.txt"), "v2\n")
	time.Sleep(300 * time.Millisecond)
	if g := l.d.Generation(); g.Number != n {
		t.Fatalf("saving the same bytes started generation %d", g.Number)
	}
	if d := l.headTag(t, "test/img:latest"); d != d4 {
		t.Fatalf("saving the same bytes moved the tag's digest %s -> %s", d4, d)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestHotReloadIndex: each platform of an index gets its own layer, and an
// edit of one overlay reaches that platform only.
func TestHotReloadIndex(t *testing.T) {
	l := startLive(t, map[string]string{
		"foo.txt": "common\n",
		".platforms/linux_amd64/.towerreg/entry*": "#!amd64 v1\n",
		".platforms/linux_arm64/.towerreg/entry*": "#!arm64 v1\n",
	})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: randomImage(t, types.OCIManifestSchema1, v1.Config{}), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: randomImageFor(t, "arm64", types.OCIManifestSchema1, v1.Config{}), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: randomImageFor(t, "s390x", types.OCIManifestSchema1, v1.Config{}), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
	)
	l.push(t, "test/multi:latest", idx)

	check := func(d v1.Hash, want map[string]map[string]string) {
		t.Helper()
		got, err := remote.Index(mustRef(t, l.ref("test/multi@"+d.String())))
		if err != nil {
			t.Fatal(err)
		}
		im, err := got.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range im.Manifests {
			img, err := got.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			files := appended(t, img)
			for name, content := range want[m.Platform.Architecture] {
				if files[name] != content {
					t.Errorf("%s: %s = %q, want %q", m.Platform.Architecture, name, files[name], content)
				}
			}
			if m.Platform.Architecture == "s390x" {
				if _, ok := files[".towerreg/entry"]; ok {
					t.Errorf("s390x has no overlay but got an entry")
				}
			}
		}
	}
	d1 := l.headTag(t, "test/multi:latest")
	check(d1, map[string]map[string]string{
		"amd64": {"foo.txt": "common\n", ".towerreg/entry": "#!amd64 v1\n"},
		"arm64": {"foo.txt": "common\n", ".towerreg/entry": "#!arm64 v1\n"},
		"s390x": {"foo.txt": "common\n"},
	})
	atomicSave(t, filepath.Join(l.dir, ".platforms/linux_amd64/.towerreg/entry"), "#!amd64 v2\n")
	d2 := l.waitNewDigest(t, "test/multi:latest", d1)
	check(d2, map[string]map[string]string{
		"amd64": {"foo.txt": "common\n", ".towerreg/entry": "#!amd64 v2\n"},
		"arm64": {"foo.txt": "common\n", ".towerreg/entry": "#!arm64 v1\n"},
		"s390x": {"foo.txt": "common\n"},
	})
	check(d1, map[string]map[string]string{"amd64": {".towerreg/entry": "#!amd64 v1\n"}})
}

// TestBadLayerDirectory: each kind of bad directory gives an error event,
// the previous generation keeps serving, and fixing it reloads.
func TestBadLayerDirectory(t *testing.T) {
	tests := []struct {
		name    string
		root    bool // needs a non-root user
		break_  func(t *testing.T, dir string)
		fix     func(t *testing.T, dir string)
		wantErr string
	}{
		{
			name:    "symlink out of the directory",
			break_:  func(t *testing.T, dir string) { must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "escape"))) },
			fix:     func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "escape"))) },
			wantErr: "outside the layer directory",
		},
		{
			name: "socket",
			break_: func(t *testing.T, dir string) {
				ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
				must(t, err)
				t.Cleanup(func() { ln.Close() })
			},
			fix:     func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "sock"))) },
			wantErr: "socket",
		},
		{
			name:    "named pipe",
			break_:  func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, "fifo")) },
			fix:     func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "fifo"))) },
			wantErr: "named pipe",
		},
		{
			name: "unreadable file",
			root: true,
			break_: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"secret": "x"})
				must(t, os.Chmod(filepath.Join(dir, "secret"), 0))
			},
			fix:     func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "secret"))) },
			wantErr: "permission denied",
		},
		{
			name:    "directory deleted",
			break_:  func(t *testing.T, dir string) { must(t, os.RemoveAll(dir)) },
			fix:     func(t *testing.T, dir string) { writeFiles(t, dir, map[string]string{"foo.txt": "back\n"}) },
			wantErr: "no such file or directory",
		},
		{
			name:    "misspelled platform overlay",
			break_:  func(t *testing.T, dir string) { writeFiles(t, dir, map[string]string{".platforms/linux-amd64/x": "x"}) },
			fix:     func(t *testing.T, dir string) { must(t, os.RemoveAll(filepath.Join(dir, ".platforms/linux-amd64"))) },
			wantErr: "linux-amd64",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() == 0 {
				t.Skip("root reads files of any mode: this case needs a non-root user")
			}
			l := startLive(t, map[string]string{"foo.txt": "good\n"})
			l.push(t, "test/img:latest", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
			before := l.headTag(t, "test/img:latest")
			gen := l.d.Generation()

			tt.break_(t, l.dir)
			ev := l.waitReload(t)
			if ev.Err == "" || !strings.Contains(ev.Err, tt.wantErr) || ev.Changed || ev.Generation != gen.Number {
				t.Fatalf("LayerReloaded %+v: want an error mentioning %q, and generation %d kept", ev, tt.wantErr, gen.Number)
			}
			if d := l.headTag(t, "test/img:latest"); d != before {
				t.Fatalf("after a bad edit the tag serves %s, want the previous %s", d, before)
			}
			if got := appended(t, l.pull(t, l.ref("test/img:latest")))["foo.txt"]; got != "good\n" {
				t.Fatalf("previous generation: foo.txt = %q", got)
			}

			tt.fix(t, l.dir)
			writeFiles(t, l.dir, map[string]string{"foo.txt": "fixed\n"})
			d := l.waitNewDigest(t, "test/img:latest", before)
			if got := appended(t, l.pull(t, l.ref("test/img@"+d.String())))["foo.txt"]; got != "fixed\n" {
				t.Fatalf("after the fix foo.txt = %q", got)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ageStore makes every file and directory of the store (tmp/ aside) last
// used age ago, as GC sees it.
func ageStore(t testing.TB, root string, age time.Duration) {
	t.Helper()
	when := time.Now().Add(-age)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return fs.SkipDir
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReloadGC: with a store over its limit, a reload collects what no
// recent pull used, and never the current generation, so pulls go on.
func TestReloadGC(t *testing.T) {
	l := startLive(t, map[string]string{"foo.txt": "v1\n"}, func(o *daemon.Options) { o.Config.CacheMaxBytes = 1 })
	l.push(t, "test/img:latest", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	d1 := l.headTag(t, "test/img:latest")
	l.pull(t, l.ref("test/img@"+d1.String()))
	old := l.d.Generation().Set.Common.GzipDigest

	// Everything stored so far, blobs and records, was last used a day
	// ago.
	blobs := filepath.Join(l.cacheDir, "store", "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil || len(entries) == 0 {
		t.Fatalf("store holds %d blobs (%v)", len(entries), err)
	}
	ageStore(t, filepath.Join(l.cacheDir, "store"), 24*time.Hour)

	atomicSave(t, filepath.Join(l.dir, "foo.txt"), "v2\n")
	d2 := l.waitNewDigest(t, "test/img:latest", d1)
	if got := appended(t, l.pull(t, l.ref("test/img@"+d2.String())))["foo.txt"]; got != "v2\n" {
		t.Fatalf("foo.txt = %q after the reload", got)
	}
	if _, err := os.Stat(filepath.Join(blobs, old.Hex)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old generation's layer, unused for a day, survived a GC to 1 byte (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(blobs, l.d.Generation().Set.Common.GzipDigest.Hex)); err != nil {
		t.Fatalf("the current generation's layer was collected: %v", err)
	}
}
