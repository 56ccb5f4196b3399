package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/internal/regtest"
	"github.com/tower-reg/tower-reg/layer"
)

// tokenEnv is a daemon over an in-process upstream, with a clock the test
// moves, and a loopback server of layer files.
type tokenEnv struct {
	*env
	// maxBytes, when not zero, is the cache_max_bytes of the next restart.
	maxBytes int64
	clock    *testClock
	layers   *httptest.Server
	files    map[string][]byte
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	te := &tokenEnv{
		env:   &env{count: regtest.NewCounter(registry.New(registry.Logger(quiet))), cacheDir: t.TempDir()},
		clock: &testClock{t: time.Now()},
		files: map[string][]byte{},
	}
	te.upstream = httptest.NewServer(te.count)
	t.Cleanup(te.upstream.Close)
	te.layers = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := te.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(te.layers.Close)
	te.restart(t)
	return te
}

// restart starts the daemon again over the same cache and state.
func (te *tokenEnv) restart(t *testing.T) {
	t.Helper()
	if te.proxy != nil {
		te.proxy.Close()
	}
	cfg := config.Default()
	if te.maxBytes != 0 {
		cfg.CacheMaxBytes = te.maxBytes
	}
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: cfg, CacheDir: te.cacheDir, Layer: testLayer(), Keychain: authn.NewMultiKeychain(),
		Bus: event.NewBus(te.clock.now),
	})
	if err != nil {
		t.Fatal(err)
	}
	te.d = d
	te.proxy = httptest.NewServer(d.Handler())
	t.Cleanup(te.proxy.Close)
	t.Cleanup(d.WaitIdle)
}

// packed packs files into a layer served at /name and returns the JSON a
// token request takes for it.
func (te *tokenEnv) packed(t *testing.T, name string, files fstest.MapFS) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	b, err := layer.Pack(t.Context(), files, &buf)
	if err != nil {
		t.Fatal(err)
	}
	te.files["/"+name] = buf.Bytes()
	return map[string]any{"location": te.layers.URL + "/" + name, "gzipDigest": b.GzipDigest.String(),
		"gzipSize": b.GzipSize, "tarDigest": b.TarDigest.String()}
}

// request posts a token request and returns the status and the body.
func (te *tokenEnv) request(t *testing.T, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(te.proxy.URL+"/container-token", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

type tokenAnswer struct {
	ContainerToken string    `json:"containerToken"`
	TargetImage    string    `json:"targetImage"`
	Expiration     time.Time `json:"expiration"`
}

// issue asks for a token and returns the answer with its target image
// pointed at the test's proxy.
func (te *tokenEnv) issue(t *testing.T, body any) tokenAnswer {
	t.Helper()
	status, out := te.request(t, body)
	if status != http.StatusOK {
		t.Fatalf("container-token: %d %s", status, out)
	}
	var a tokenAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatal(err)
	}
	_, path, ok := strings.Cut(a.TargetImage, "/wt/")
	if !ok || !strings.Contains(path, a.ContainerToken) {
		t.Fatalf("targetImage %q does not name the token", a.TargetImage)
	}
	a.TargetImage = host(te.proxy) + "/wt/" + path
	return a
}

func TestContainerToken(t *testing.T) {
	te := newTokenEnv(t)
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{Entrypoint: []string{"/bin/app"}, Cmd: []string{"serve"}, Env: []string{"A=1"}})
	te.push(t, "test/app", "v1", base)
	image := host(te.upstream) + "/test/app:v1"
	tool := te.packed(t, "tool.tar.gz", fstest.MapFS{"opt/tool/run": {Data: []byte("#!/bin/sh\necho tool\n"), Mode: 0o755}})

	a := te.issue(t, map[string]any{"containerImage": image, "containerConfig": map[string]any{
		"layers": []any{tool}, "entrypoint": []string{"/opt/tool/run"}, "cmd": []string{"go"},
		"env": []string{"B=2"}, "workingDir": "/work",
	}})
	if !strings.HasSuffix(a.TargetImage, "/test/app:v1") || len(a.ContainerToken) < 26 {
		t.Errorf("answer %+v", a)
	}
	if d := a.Expiration.Sub(te.clock.now()); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("expires in %v, want the default 24h", d)
	}
	img, err := remote.Image(mustRef(t, a.TargetImage))
	if err != nil {
		t.Fatalf("pull %s: %v", a.TargetImage, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	bl, _ := base.Layers()
	last, _ := ls[len(ls)-1].Digest()
	if len(ls) != len(bl)+1 || last.String() != tool["gzipDigest"] {
		t.Fatalf("%d layers ending with %s, want the base's %d and the token's %s", len(ls), last, len(bl), tool["gzipDigest"])
	}
	cf, _ := img.ConfigFile()
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/opt/tool/run"}) || !slices.Equal(c.Cmd, []string{"go"}) || c.WorkingDir != "/work" || !slices.Equal(c.Env, []string{"A=1", "B=2"}) {
		t.Errorf("config %+v", c)
	}
	// Any tag of the repository names the token's image.
	other, err := remote.Image(mustRef(t, strings.TrimSuffix(a.TargetImage, ":v1")+":whatever"))
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := other.Digest()
	if d1 != d2 {
		t.Errorf("another tag gave %s, want %s", d2, d1)
	}

	if c := te.d.Status().Counts; c.Tokens != 1 || c.TokensIssued != 1 {
		t.Errorf("status counts %+v after one token, want 1 live and 1 issued", c)
	}

	// The token survives a restart.
	te.restart(t)
	if c := te.d.Status().Counts; c.Tokens != 1 || c.TokensIssued != 0 {
		t.Errorf("status counts %+v after a restart, want 1 live and none issued", c)
	}
	after := host(te.proxy) + "/wt/" + strings.SplitN(a.TargetImage, "/wt/", 2)[1]
	again, err := remote.Image(mustRef(t, after))
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if d, _ := again.Digest(); d != d1 {
		t.Errorf("after restart %s, want %s", d, d1)
	}

	// Expired: the registry says so, with the time.
	te.clock.add(25 * time.Hour)
	_, err = remote.Image(mustRef(t, after))
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), a.ContainerToken[:6]+"… expired at") {
		t.Errorf("pull of an expired token: %v", err)
	}
	if c := te.d.Status().Counts; c.Tokens != 0 {
		t.Errorf("status counts %+v with the token expired, want none live", c)
	}
}

func TestContainerTokenPinsGeneration(t *testing.T) {
	te := newTokenEnv(t)
	base := randomImage(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"sh"}})
	te.push(t, "test/app", "latest", base)
	a := te.issue(t, map[string]any{"containerImage": host(te.upstream) + "/test/app"})
	img, err := remote.Image(mustRef(t, a.TargetImage))
	if err != nil {
		t.Fatal(err)
	}
	checkInjected(t, te.layerFor("amd64"), base, img)
}

// TestContainerTokenSurvivesGC: a live token keeps the record of its layer
// generation through the GC at start, which takes every other record: the
// GC runs once the tokens are pinned (pinning reads the record, which also
// makes it recent for the grace period; the pin itself outlasts that, as
// store: TestGCRecords "a pinned record stays" shows).
func TestContainerTokenSurvivesGC(t *testing.T) {
	te := newTokenEnv(t)
	base := randomImage(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"sh"}})
	te.push(t, "test/app", "latest", base)
	a := te.issue(t, map[string]any{"containerImage": host(te.upstream) + "/test/app"})

	ageStore(t, filepath.Join(te.cacheDir, "store"), time.Hour)
	te.maxBytes = 1
	te.restart(t)
	after := host(te.proxy) + "/wt/" + strings.SplitN(a.TargetImage, "/wt/", 2)[1]
	img, err := remote.Image(mustRef(t, after))
	if err != nil {
		t.Fatalf("pull by the token after a GC to 1 byte: %v", err)
	}
	checkInjected(t, te.layerFor("amd64"), base, img)
}

func TestContainerTokenErrors(t *testing.T) {
	te := newTokenEnv(t)
	te.push(t, "test/app", "v1", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	image := host(te.upstream) + "/test/app:v1"
	good := te.packed(t, "l.tar.gz", fstest.MapFS{"f": {Data: []byte("content"), Mode: 0o644}})
	with := func(field string, v any) map[string]any {
		l := map[string]any{}
		for k, x := range good {
			l[k] = x
		}
		l[field] = v
		return map[string]any{"containerImage": image, "containerConfig": map[string]any{"layers": []any{l}}}
	}
	zero := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name   string
		body   any
		status int
		want   []string // in the message
	}{
		{"gzipDigest", with("gzipDigest", zero), 400, []string{"gzipDigest", zero, good["gzipDigest"].(string)}},
		{"tarDigest", with("tarDigest", zero), 400, []string{"tarDigest", zero, good["tarDigest"].(string)}},
		{"gzipSize", with("gzipSize", 3), 400, []string{"gzipSize", "3"}},
		{"location not found", with("location", te.layers.URL+"/nope"), 400, []string{"layers[0]", "404"}},
		{"ftp location", with("location", "ftp://example.com/l.tar.gz"), 400, []string{"location"}},
		{"image not found", map[string]any{"containerImage": host(te.upstream) + "/test/nothing:v1"}, 404, []string{"not found"}},
		{"image unreachable", map[string]any{"containerImage": "127.0.0.1:1/test/app:v1"}, 424, []string{"could not be reached"}},
		{"no image", map[string]any{}, 400, []string{"containerImage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := te.request(t, tt.body)
			if status != tt.status {
				t.Fatalf("status %d %s, want %d", status, out, tt.status)
			}
			var e struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(out, &e); err != nil || len(e.Errors) == 0 {
				t.Fatalf("body %s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Errors[0].Message, w) {
					t.Errorf("message %q lacks %q", e.Errors[0].Message, w)
				}
			}
		})
	}

	// Requests a web page could send are refused.
	for _, hdr := range []map[string]string{{"Content-Type": "text/plain"}, {"Content-Type": "application/json", "Origin": "https://evil.example"}} {
		req, _ := http.NewRequest("POST", te.proxy.URL+"/container-token", strings.NewReader(`{"containerImage":"`+image+`"}`))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("request with %v: %d, want a 4xx", hdr, resp.StatusCode)
		}
	}
}

// TestTokenRoutes: a token names its image only.
func TestTokenRoutes(t *testing.T) {
	te := newTokenEnv(t)
	te.push(t, "test/app", "v1", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	other := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	te.push(t, "test/app", "v2", other)
	a := te.issue(t, map[string]any{"containerImage": host(te.upstream) + "/test/app:v1"})
	if _, err := remote.Image(mustRef(t, a.TargetImage)); err != nil {
		t.Fatal(err)
	}
	otherLayers, _ := other.Layers()
	otherLayer, _ := otherLayers[0].Digest()
	// The developer pulls v2 too: its rewrite is in the store.
	v2, err := remote.Image(mustRef(t, te.through("test/app")+":v2"))
	if err != nil {
		t.Fatal(err)
	}
	v2Digest, _ := v2.Digest()
	base := "/v2/wt/" + a.ContainerToken
	tests := []struct {
		name, path string
		status     int
		code, msg  string
	}{
		{"unknown token", "/v2/wt/" + strings.Repeat("a", 32) + "/test/app/manifests/v1", 403, "DENIED", "container token aaaaaa… is unknown"},
		{"other repository", base + "/test/other/manifests/v1", 403, "DENIED", "is for the repository test/app, not test/other"},
		{"another image of the repository, by digest", base + "/test/app/manifests/" + v2Digest.String(), 404, "MANIFEST_UNKNOWN", "not a manifest of the image"},
		{"a blob of another image", base + "/test/app/blobs/" + otherLayer.String(), 404, "BLOB_UNKNOWN", "not a blob of the image"},
		{"no repository", "/v2/wt/" + a.ContainerToken + "/manifests/v1", 404, "NAME_UNKNOWN", "/v2/wt/<token>/<repository>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(te.proxy.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Errors []struct{ Code, Message string }
			}
			json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tt.status || len(e.Errors) == 0 || e.Errors[0].Code != tt.code || !strings.Contains(e.Errors[0].Message, tt.msg) {
				t.Fatalf("%d %+v, want %d %s %q", resp.StatusCode, e, tt.status, tt.code, tt.msg)
			}
			if strings.Contains(fmt.Sprint(e), a.ContainerToken) {
				t.Error("an error message carries the whole token")
			}
		})
	}
}
