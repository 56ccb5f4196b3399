package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/layer"
)

// quiet silences the in-process upstream's request log.
var quiet = log.New(io.Discard, "", 0)

// counter wraps an upstream and counts requests by method and kind.
type counter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
}

func newCounter(next http.Handler) *counter { return &counter{next: next, n: map[string]int{}} }

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := r.Method + " other"
	switch {
	case strings.Contains(r.URL.Path, "/manifests/"):
		k = r.Method + " manifest"
	case strings.Contains(r.URL.Path, "/blobs/"):
		k = r.Method + " blob"
	}
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

// testLayer is a small layer directory: a common file, and an "entry" for
// amd64 and arm64 only, as the default layer has.
func testLayer() fstest.MapFS {
	return fstest.MapFS{
		"foo.txt":                                {Data: []byte("hello from the test layer\n"), Mode: 0o644},
		".platforms/linux_amd64/.towerreg/entry": {Data: []byte("#!amd64 entry\n"), Mode: 0o755},
		".platforms/linux_arm64/.towerreg/entry": {Data: []byte("#!arm64 entry\n"), Mode: 0o755},
	}
}

// layerFor is the layer the daemon must have appended to an image of arch.
func (e *env) layerFor(arch string) layer.Built {
	return e.d.Generation().Set.For(&v1.Platform{OS: "linux", Architecture: arch})
}

type env struct {
	upstream *httptest.Server
	count    *counter
	proxy    *httptest.Server
	d        *daemon.Daemon
	cacheDir string
	cfg      config.Config
}

// host of a test server, as it goes into image names.
func host(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// pathHost is the upstream host as it goes into a path: Docker's grammar
// has no ':' there, so the port is spelled with '_'.
func pathHost(s *httptest.Server) string { return strings.Replace(host(s), ":", "_", 1) }

func newEnv(t *testing.T, upstream http.Handler) *env {
	t.Helper()
	return newEnvWith(t, upstream, config.Default())
}

// newEnvWith is newEnv with a config of the test's.
func newEnvWith(t *testing.T, upstream http.Handler, cfg config.Config) *env {
	t.Helper()
	e := &env{count: newCounter(upstream), cacheDir: t.TempDir(), cfg: cfg}
	e.upstream = httptest.NewServer(e.count)
	t.Cleanup(e.upstream.Close)
	e.start(t, nil)
	return e
}

// start (re)starts the daemon over the same cache directory.
func (e *env) start(t *testing.T, kc authn.Keychain) {
	t.Helper()
	if e.proxy != nil {
		e.proxy.Close()
	}
	if kc == nil {
		kc = authn.NewMultiKeychain() // anonymous: never the host's docker config
	}
	d, err := daemon.New(t.Context(), daemon.Options{
		Config:      e.cfg,
		CacheDir:    e.cacheDir,
		Layer:       testLayer(),
		LayerSource: "test",
		Keychain:    kc,
	})
	if err != nil {
		t.Fatalf("daemon.New: %v", err)
	}
	e.d = d
	e.proxy = httptest.NewServer(d.Handler())
	t.Cleanup(e.proxy.Close)
	t.Cleanup(d.WaitIdle) // before the cache dir is removed
}

// push writes img to the upstream under repo:tag and returns its digest.
func (e *env) push(t *testing.T, repo, tag string, img remote.Taggable) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(host(e.upstream) + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	switch x := img.(type) {
	case v1.Image:
		err = remote.Write(ref, x)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// through is the proxy's name for an upstream repository.
func (e *env) through(repo string) string {
	return host(e.proxy) + "/" + pathHost(e.upstream) + "/" + repo
}

func randomImage(t testing.TB, mt types.MediaType, cfg v1.Config) v1.Image {
	return randomImageFor(t, "amd64", mt, cfg)
}

func randomImageFor(t testing.TB, arch string, mt types.MediaType, cfg v1.Config) v1.Image {
	t.Helper()
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, mt)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if mt == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPullImage(t *testing.T) {
	tests := []struct {
		name string
		arch string
		mt   types.MediaType
		cfg  v1.Config
	}{
		{"docker", "amd64", types.DockerManifestSchema2, v1.Config{Entrypoint: []string{"/bin/app", "--flag with space"}, Cmd: []string{"serve"}, Env: []string{"A=1"}}},
		{"oci", "amd64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}, WorkingDir: "/work", User: "1000"}},
		{"no entrypoint no cmd", "amd64", types.OCIManifestSchema1, v1.Config{}},
		{"arm64 gets the arm64 entry", "arm64", types.OCIManifestSchema1, v1.Config{Entrypoint: []string{"/app"}}},
		{"no payload for s390x: common files, entrypoint kept", "s390x", types.OCIManifestSchema1, v1.Config{Entrypoint: []string{"/app"}}},
	}
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := randomImageFor(t, tt.arch, tt.mt, tt.cfg)
			e.push(t, "test/img", "latest", base)

			got, err := remote.Image(mustRef(t, e.through("test/img")+":latest"))
			if err != nil {
				t.Fatalf("pull through proxy: %v", err)
			}
			// validate.Image downloads every blob and checks every digest,
			// diff_id and size, as a client would.
			if err := validate.Image(got); err != nil {
				t.Fatalf("rewritten image is invalid: %v", err)
			}
			checkInjected(t, e.layerFor(tt.arch), base, got)
			mt, _ := got.MediaType()
			if mt != tt.mt {
				t.Fatalf("media type %s, want %s", mt, tt.mt)
			}
		})
	}
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkInjected checks that got is base with l appended and the entry chain
// set up.
func checkInjected(t *testing.T, l layer.Built, base, got v1.Image) {
	t.Helper()
	bl, _ := base.Layers()
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(gl) != len(bl)+1 {
		t.Fatalf("%d layers, want %d", len(gl), len(bl)+1)
	}
	for i := range bl {
		bd, _ := bl[i].Digest()
		gd, _ := gl[i].Digest()
		if bd != gd {
			t.Fatalf("base layer %d changed: %s -> %s", i, bd, gd)
		}
	}
	last, _ := gl[len(gl)-1].Digest()
	if last != l.GzipDigest {
		t.Fatalf("last layer %s, want the injected %s", last, l.GzipDigest)
	}
	bc, _ := base.ConfigFile()
	gc, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !l.HasEntry {
		if !equal(gc.Config.Entrypoint, bc.Config.Entrypoint) || !equal(gc.Config.Env, bc.Config.Env) {
			t.Fatalf("a layer without an entry changed the entrypoint or env: %+v -> %+v", bc.Config, gc.Config)
		}
		return
	}
	if want := []string{layer.EntryPath}; !equal(gc.Config.Entrypoint, want) {
		t.Fatalf("entrypoint %q, want %q", gc.Config.Entrypoint, want)
	}
	if !equal(gc.Config.Cmd, bc.Config.Cmd) || gc.Config.WorkingDir != bc.Config.WorkingDir {
		t.Fatalf("cmd/workdir changed: %+v -> %+v", bc.Config, gc.Config)
	}
	orig, _ := json.Marshal(bc.Config.Entrypoint)
	if bc.Config.Entrypoint == nil {
		orig = []byte("[]")
	}
	wantEnv := []string{layer.EntrypointEnv + "=" + string(orig)}
	wantUser := bc.Config.User
	if bc.Config.User != "" {
		// The container starts as root to mount; the entry switches back.
		wantEnv = append(wantEnv, layer.UserEnv+"="+bc.Config.User)
		wantUser = layer.RootUser
	}
	if gc.Config.User != wantUser {
		t.Fatalf("user %q, want %q", gc.Config.User, wantUser)
	}
	if n, w := len(gc.Config.Env), len(wantEnv); n < w || !equal(gc.Config.Env[n-w:], wantEnv) {
		t.Fatalf("env %q, want it to end with %q", gc.Config.Env, wantEnv)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPullIndex(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	amd := randomImage(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	arm := randomImageFor(t, "arm64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	up := e.push(t, "test/multi", "latest", idx)

	e.count.reset()
	got, err := remote.Index(mustRef(t, e.through("test/multi")+":latest"))
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if err := validate.Index(got); err != nil {
		t.Fatalf("rewritten index is invalid: %v", err)
	}
	d, _ := got.Digest()
	if d == up {
		t.Fatal("index digest unchanged: nothing was rewritten")
	}
	im, _ := got.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(im.Manifests))
	}
	for i, base := range []v1.Image{amd, arm} {
		img, err := got.Image(im.Manifests[i].Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkInjected(t, e.layerFor(im.Manifests[i].Platform.Architecture), base, img)
	}
	if a, b := e.layerFor("amd64").GzipDigest, e.layerFor("arm64").GzipDigest; a == b {
		t.Fatalf("amd64 and arm64 got the same layer %s: the overlays were not applied", a)
	}

	// A client that accepts no index gets the linux/amd64 image, as from
	// distribution, when it asks by tag; by digest it gets what it named.
	for _, tt := range []struct{ ref, want string }{
		{"latest", im.Manifests[0].Digest.String()},
		{d.String(), d.String()},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.proxy.URL+"/v2/"+pathHost(e.upstream)+"/test/multi/manifests/"+tt.ref, nil)
		req.Header.Set("Accept", string(types.OCIManifestSchema1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != 200 || got != tt.want {
			t.Errorf("GET %s without index in Accept: %d, digest %s; want %s", tt.ref, resp.StatusCode, got, tt.want)
		}
	}
}

// TestPullIndexSharedAndKeptChildren covers an index that lists one image
// for two platforms, each of which needs its own layer, and children that
// are kept as they are but must still be served by digest.
func TestPullIndexSharedAndKeptChildren(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	shared := randomImage(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	unknown := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	nested := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: randomImage(t, types.OCIManifestSchema1, v1.Config{})})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: shared, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: shared, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: unknown, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}},
		mutate.IndexAddendum{Add: nested},
	)
	e.push(t, "test/shared", "latest", idx)

	got, err := remote.Index(mustRef(t, e.through("test/shared")+":latest"))
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 4 {
		t.Fatalf("%d manifests, want 4", len(im.Manifests))
	}
	if im.Manifests[0].Digest == im.Manifests[1].Digest {
		t.Fatal("amd64 and arm64 share one rewritten image: one of them has the other's layer")
	}
	for _, i := range []int{0, 1} {
		img, err := got.Image(im.Manifests[i].Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkInjected(t, e.layerFor(im.Manifests[i].Platform.Architecture), shared, img)
	}

	for i, want := range []remote.Taggable{unknown, nested} {
		d := im.Manifests[2+i].Digest
		wantDigest, _ := want.(interface{ Digest() (v1.Hash, error) }).Digest()
		if d != wantDigest {
			t.Errorf("kept child %d: digest %s, want the upstream %s", 2+i, d, wantDigest)
		}
		desc, err := remote.Get(mustRef(t, e.through("test/shared")+"@"+d.String()))
		if err != nil {
			t.Errorf("kept child %d by digest: %v", 2+i, err)
			continue
		}
		if desc.Digest != d {
			t.Errorf("kept child %d: served %s for %s", 2+i, desc.Digest, d)
		}
	}

	// Being listed unchanged in one repository's index does not make an
	// upstream image servable by digest in another.
	e.push(t, "test/other", "latest", unknown)
	if _, err := remote.Get(mustRef(t, e.through("test/other")+"@"+im.Manifests[2].Digest.String())); err == nil {
		t.Error("an upstream image digest was served unchanged in a repository whose index never listed it")
	}
}

func TestCacheAndRestart(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	first := randomImage(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"a"}})
	e.push(t, "test/img", "latest", first)
	ref := mustRef(t, e.through("test/img")+":latest")

	d1, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	e.count.reset()
	d2, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d1.Digest != d2.Digest {
		t.Fatalf("same upstream, same layer: digest %s then %s", d1.Digest, d2.Digest)
	}
	if got := e.count.get("GET manifest") + e.count.get("GET blob"); got != 0 {
		t.Fatalf("a warm pull by tag made %d upstream GETs, want only a HEAD", got)
	}
	if got := e.count.get("HEAD manifest"); got != 1 {
		t.Fatalf("a warm pull by tag made %d upstream HEADs, want 1", got)
	}

	// The tag moves upstream and the daemon restarts: the old rewritten
	// digest still resolves, from the store.
	e.push(t, "test/img", "latest", randomImage(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"b"}}))
	e.start(t, nil)
	ref = mustRef(t, e.through("test/img")+":latest")
	old, err := remote.Image(mustRef(t, e.through("test/img")+"@"+d1.Digest.String()))
	if err != nil {
		t.Fatalf("pull of the old rewritten digest after restart: %v", err)
	}
	if err := validate.Image(old); err != nil {
		t.Fatal(err)
	}
	moved, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Digest == d1.Digest {
		t.Fatal("the tag moved upstream but the proxy kept the old rewrite")
	}
}

func TestPullByUpstreamDigest(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	up := e.push(t, "test/img", "v1", base)

	_, err := remote.Image(mustRef(t, e.through("test/img")+"@"+up.String()))
	if err == nil || !strings.Contains(err.Error(), "sha256-"+up.Hex) {
		t.Fatalf("pull by upstream digest: err = %v, want a MANIFEST_UNKNOWN naming the tag form", err)
	}

	byTagForm, err := remote.Image(mustRef(t, e.through("test/img")+":sha256-"+up.Hex))
	if err != nil {
		t.Fatalf("pull by the tag form: %v", err)
	}
	checkInjected(t, e.layerFor("amd64"), base, byTagForm)
	byTag, err := remote.Image(mustRef(t, e.through("test/img")+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := byTagForm.Digest()
	b, _ := byTag.Digest()
	if a != b {
		t.Fatalf("tag form gave %s, tag gave %s: same upstream digest must give the same rewrite", a, b)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	e.push(t, "test/img", "latest", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	up := host(e.upstream)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/" + up + "/../x/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/Test/img/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/" + strings.Repeat("a", 300) + "/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/test/img/manifests/sha256:zz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/" + up + "/test/img/blobs/sha256:zz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/" + up + "/test/img/manifests/-bad", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/test/nope/manifests/latest", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/" + up + "/test/img/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/" + up + "/test/img/blobs/sha256:" + strings.Repeat("0", 64), 404, "BLOB_UNKNOWN"},
		{"PUT", "/v2/" + up + "/test/img/manifests/latest", 405, "UNSUPPORTED"},
		{"POST", "/v2/" + up + "/test/img/blobs/uploads/", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/" + up + "/test/img/manifests/latest", 405, "UNSUPPORTED"},
		{"GET", "/v2/127.0.0.1:1/x/manifests/latest", 503, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			e.count.reset()
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, e.proxy.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not OCI error JSON: %v", err)
			}
			if resp.StatusCode != tt.status || len(body.Errors) == 0 || body.Errors[0].Code != tt.code {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body.Errors, tt.status, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if tt.method != "GET" && e.count.get(tt.method+" manifest")+e.count.get(tt.method+" blob")+e.count.get(tt.method+" other") != 0 {
				t.Fatalf("%s reached the upstream", tt.method)
			}
		})
	}
}

// TestBlobRangeAndHeaders covers blobs from both sources, the upstream (a
// base layer) and the store (the injected layer): whole, ranged, HEAD, and
// a range past the end.
func TestBlobRangeAndHeaders(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	e.push(t, "test/img", "latest", base)
	if _, err := remote.Head(mustRef(t, e.through("test/img")+":latest")); err != nil {
		t.Fatal(err)
	}
	ls, _ := base.Layers()
	baseDigest, _ := ls[0].Digest()
	rc, _ := ls[0].Compressed()
	baseBytes, _ := io.ReadAll(rc)
	// The injected layer's bytes, whole, are checked by their digest.
	l := e.layerFor("amd64")
	resp, err := http.Get(e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/blobs/" + l.GzipDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	ourBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, _, _ := v1.SHA256(bytes.NewReader(ourBytes)); got != l.GzipDigest || int64(len(ourBytes)) != l.GzipSize {
		t.Fatalf("injected layer: %d bytes hashing to %s, want %d, %s", len(ourBytes), got, l.GzipSize, l.GzipDigest)
	}

	for _, src := range []struct {
		name   string
		digest v1.Hash
		bytes  []byte
	}{
		{"upstream", baseDigest, baseBytes},
		{"store", l.GzipDigest, ourBytes},
	} {
		size := len(src.bytes)
		// A range of an upstream blob is cut from the whole blob, verified
		// and kept in the store: both sources answer alike.
		pastEnd := fmt.Sprintf("bytes */%d", size)
		tests := []struct {
			name, method, rng string
			status            int
			body              []byte
			contentRange      string
			digestHeader      bool
		}{
			{"head", "HEAD", "", 200, nil, "", true},
			{"range", "GET", "bytes=10-19", 206, src.bytes[10:20], fmt.Sprintf("bytes 10-19/%d", size), true},
			{"past the end", "GET", fmt.Sprintf("bytes=%d-", size+10), 416, nil, pastEnd, false},
			{"suffix", "GET", "bytes=-5", 206, src.bytes[size-5:], fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size), true},
			{"whole", "GET", "", 200, src.bytes, "", true},
		}
		for _, tt := range tests {
			t.Run(src.name+"/"+tt.name, func(t *testing.T) {
				url := e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/blobs/" + src.digest.String()
				req, _ := http.NewRequestWithContext(t.Context(), tt.method, url, nil)
				if tt.rng != "" {
					req.Header.Set("Range", tt.rng)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d (%s), want %d", resp.StatusCode, got, tt.status)
				}
				if tt.body != nil && !bytes.Equal(got, tt.body) {
					t.Errorf("body of %d bytes, want %d", len(got), len(tt.body))
				}
				if tt.method == "HEAD" && resp.ContentLength != int64(size) {
					t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, size)
				}
				if h := resp.Header.Get("Content-Range"); h != tt.contentRange {
					t.Errorf("Content-Range %q, want %q", h, tt.contentRange)
				}
				if h := resp.Header.Get("Docker-Content-Digest"); (h == src.digest.String()) != tt.digestHeader {
					t.Errorf("Docker-Content-Digest %q (want it: %v)", h, tt.digestHeader)
				}
				if tt.status == 416 && resp.Header.Get("Content-Type") == "application/octet-stream" {
					t.Error("a 416 is labelled as blob content")
				}
			})
		}
	}
}

// TestUpstreamDiesMidBlob: the client must see an error, never a short blob
// presented as whole.
func TestUpstreamDiesMidBlob(t *testing.T) {
	reg := registry.New(registry.Logger(quiet))
	var cut atomic.Bool
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut.Load() && r.Method == "GET" && strings.Contains(r.URL.Path, "/blobs/") {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
			w.(http.Flusher).Flush() // the status and half the body are out
			panic(http.ErrAbortHandler)
		}
		reg.ServeHTTP(w, r)
	}))
	// Big enough that the proxy has streamed (and flushed) part of it
	// before the cut.
	base, err := random.Image(2<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.push(t, "test/img", "latest", base)
	ls, _ := base.Layers()
	d, _ := ls[0].Digest()
	cut.Store(true)

	resp, err := http.Get(e.proxy.URL + "/v2/" + host(e.upstream) + "/test/img/blobs/" + d.String())
	if err != nil {
		t.Fatalf("GET through the proxy: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: the proxy should have started streaming before the upstream died", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("read %d bytes of a cut blob with status %d and no error: %s", len(b), resp.StatusCode, b)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("client error %v, want an unexpected EOF", err)
	}
}

// TestBearerAuth runs the upstream behind a token server, the way Docker Hub
// and quay.io work, and checks that the token is fetched once and reused.
func TestBearerAuth(t *testing.T) {
	var tokens atomic.Int32
	reg := registry.New(registry.Logger(quiet))
	const user, pass, token = "alice", "s3cret", "tok-123"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			tokens.Add(1)
			fmt.Fprintf(w, `{"token":%q}`, token)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// Seed the upstream with credentials, then proxy with and without them.
	e := &env{count: newCounter(srv.Config.Handler), cacheDir: t.TempDir(), upstream: srv, cfg: config.Default()}
	ref := mustRef(t, host(srv)+"/test/private:latest")
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(ref, base, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}

	// Anonymous first; then the developer logs in while the daemon runs,
	// and the next pull must use the new credentials: a transport refused
	// once is not kept.
	kc := &loginKeychain{}
	e.start(t, kc)
	_, err := remote.Image(mustRef(t, e.through("test/private")+":latest"))
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous pull of a private image: %v, want UNAUTHORIZED", err)
	}

	kc.login(fixedKeychain{host(srv): &authn.Basic{Username: user, Password: pass}})
	tokens.Store(0)
	for range 3 {
		img, err := remote.Image(mustRef(t, e.through("test/private")+":latest"))
		if err != nil {
			t.Fatalf("pull with credentials: %v", err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatal(err)
		}
	}
	if n := tokens.Load(); n != 1 {
		t.Fatalf("%d token requests for 3 pulls, want 1 (tokens must be reused)", n)
	}
}

// TestBasicAuthLogin: against a registry with Basic auth, the transport of
// an anonymous client is made without a token exchange, so it is cached;
// after a login it must still give way to the new credentials.
func TestBasicAuthLogin(t *testing.T) {
	reg := registry.New(registry.Logger(quiet))
	const user, pass = "bob", "hunter2"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e := &env{count: newCounter(srv.Config.Handler), cacheDir: t.TempDir(), upstream: srv, cfg: config.Default()}
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(srv)+"/test/private:latest"), base, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	kc := &loginKeychain{}
	e.start(t, kc)
	ref := mustRef(t, e.through("test/private")+":latest")
	if _, err := remote.Image(ref); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous pull: %v, want UNAUTHORIZED", err)
	}
	kc.login(fixedKeychain{host(srv): &authn.Basic{Username: user, Password: pass}})
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull after login: %v", err)
	}
	checkInjected(t, e.layerFor("amd64"), base, img)
}

// loginKeychain is anonymous until login, as a keychain is before and after
// a `docker login`.
type loginKeychain struct{ kc atomic.Pointer[fixedKeychain] }

func (k *loginKeychain) login(kc fixedKeychain) { k.kc.Store(&kc) }

func (k *loginKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if kc := k.kc.Load(); kc != nil {
		return kc.Resolve(r)
	}
	return authn.Anonymous, nil
}

type fixedKeychain map[string]authn.Authenticator

func (k fixedKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// TestUpstreamFaults: transient upstream failures are retried; lasting ones
// reach the client as the matching OCI error, never as a 500 of ours.
func TestUpstreamFaults(t *testing.T) {
	reg := registry.New(registry.Logger(quiet))
	var failures atomic.Int32 // failures left before the upstream recovers
	var status atomic.Int32
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && failures.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(status.Load()))
			fmt.Fprintf(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	e.push(t, "test/img", "latest", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	url := e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/manifests/latest"

	tests := []struct {
		name       string
		status     int
		failures   int32
		wantStatus int
		wantCode   string
	}{
		{"one 503 is retried", http.StatusServiceUnavailable, 1, 200, ""},
		{"one 429 is retried", http.StatusTooManyRequests, 1, 200, ""},
		{"lasting 429 reaches the client", http.StatusTooManyRequests, 100, 429, "TOOMANYREQUESTS"},
		{"lasting 502 is a 502", http.StatusBadGateway, 100, 502, "UNAVAILABLE"},
		{"lasting 500 is a 502", http.StatusInternalServerError, 100, 502, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status.Store(int32(tt.status))
			failures.Store(tt.failures)
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Errors []struct{ Code string } }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%+v), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantCode != "" && (len(body.Errors) == 0 || body.Errors[0].Code != tt.wantCode) {
				t.Fatalf("errors %+v, want %s", body.Errors, tt.wantCode)
			}
		})
	}
	failures.Store(0)
}

// TestUpstreamQuirks: registries that bend the spec in ways seen in the
// wild still give a correct pull.
func TestUpstreamQuirks(t *testing.T) {
	tests := []struct {
		name  string
		quirk func(w http.ResponseWriter, r *http.Request, next http.Handler)
	}{
		{"HEAD without Docker-Content-Digest", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if r.Method == http.MethodHead {
				next.ServeHTTP(dropHeader{w, "Docker-Content-Digest"}, r)
				return
			}
			next.ServeHTTP(w, r)
		}},
		{"no HEAD on manifests", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			next.ServeHTTP(w, r)
		}},
		{"manifests as application/json", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				next.ServeHTTP(forceType{ResponseWriter: w, ct: "application/json"}, r)
				return
			}
			next.ServeHTTP(w, r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registry.New(registry.Logger(quiet))
			var on atomic.Bool
			e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if on.Load() {
					tt.quirk(w, r, reg)
					return
				}
				reg.ServeHTTP(w, r)
			}))
			base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
			e.push(t, "test/img", "latest", base)
			on.Store(true)
			img, err := remote.Image(mustRef(t, e.through("test/img")+":latest"))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			checkInjected(t, e.layerFor("amd64"), base, img)
		})
	}
}

// dropHeader removes one header from a response.
type dropHeader struct {
	http.ResponseWriter
	name string
}

func (d dropHeader) WriteHeader(code int) {
	d.Header().Del(d.name)
	d.ResponseWriter.WriteHeader(code)
}

// forceType sets the Content-Type of a response, whatever the handler says.
type forceType struct {
	http.ResponseWriter
	ct string
}

func (f forceType) WriteHeader(code int) {
	f.Header().Set("Content-Type", f.ct)
	f.ResponseWriter.WriteHeader(code)
}

func (f forceType) Write(b []byte) (int, error) {
	f.Header().Set("Content-Type", f.ct)
	return f.ResponseWriter.Write(b)
}

// TestSharedWorkOutlivesFirstClient: the ping and token exchange for a
// repository, and the rewrite of an image, are shared by every request
// waiting on them, so a first client that gives up must not fail the
// others.
func TestSharedWorkOutlivesFirstClient(t *testing.T) {
	tests := []struct {
		name string
		hold func(r *http.Request) bool // the upstream request to hold
	}{
		{"dial", func(r *http.Request) bool { return r.URL.Path == "/v2/" }},
		{"rewrite", func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registry.New(registry.Logger(quiet))
			release := make(chan struct{})
			var gate atomic.Bool
			e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if gate.Load() && tt.hold(r) {
					<-release
				}
				reg.ServeHTTP(w, r)
			}))
			e.push(t, "test/img", "latest", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
			gate.Store(true)
			url := e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/manifests/latest"

			first, cancel := context.WithCancel(t.Context())
			firstDone := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(first, http.MethodGet, url, nil)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				firstDone <- err
			}()
			secondDone := make(chan int, 1)
			go func() {
				time.Sleep(50 * time.Millisecond) // let the first client start the work
				resp, err := http.Get(url)
				if err != nil {
					secondDone <- 0
					return
				}
				resp.Body.Close()
				secondDone <- resp.StatusCode
			}()
			time.Sleep(150 * time.Millisecond)
			cancel()
			if err := <-firstDone; err == nil {
				t.Error("the first client was not cancelled")
			}
			close(release)
			if got := <-secondDone; got != http.StatusOK {
				t.Fatalf("second client: status %d after the first gave up, want 200", got)
			}
		})
	}
}

func TestTagsList(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	for _, tag := range []string{"v1", "v2"} {
		e.push(t, "test/img", tag, randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	}
	name := pathHost(e.upstream) + "/test/img"
	resp, err := http.Get(e.proxy.URL + "/v2/" + name + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || list.Name != name || !equal(list.Tags, []string{"v1", "v2"}) {
		t.Fatalf("tags/list: %d %+v, want name %q and tags [v1 v2]", resp.StatusCode, list, name)
	}
}

// TestNewRefusesBadDefaultRegistry: a default registry that short names
// cannot resolve against stops the daemon at start, not at every pull.
func TestNewRefusesBadDefaultRegistry(t *testing.T) {
	for _, reg := range []string{"myregistry", "Docker.IO", "reg.example/path"} {
		t.Run(reg, func(t *testing.T) {
			cfg := config.Default()
			cfg.DefaultRegistry = reg
			d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, CacheDir: t.TempDir(), Layer: testLayer(), LayerSource: "test"})
			if err == nil {
				d.WaitIdle()
				t.Fatalf("daemon.New took default registry %q", reg)
			}
			if !strings.Contains(err.Error(), "default_registry") {
				t.Errorf("error %q does not name the config key", err)
			}
		})
	}
}
