package daemon_test

// The helpers here start a whole daemon in front of an in-memory upstream,
// for the tests that need it: its lifecycle, audiences, reloads, tokens.
// A test of the registry routes alone or of the proxy's behaviour belongs
// in daemon/api (stack_test.go) or daemon/proxy; internal/regtest holds
// what they share.

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/regtest"
	"github.com/tower-reg/tower-reg/layer"
)

// quiet silences the in-process upstream's request log.
var quiet = log.New(io.Discard, "", 0)

// testLayer is regtest's layer: a common file, and an "entry" for amd64
// and arm64 only.
func testLayer() fstest.MapFS { return regtest.Layer() }

// layerFor is the layer the daemon must have appended to an image of arch.
func (e *env) layerFor(arch string) layer.Built {
	return e.d.Generation().Set.For(&v1.Platform{OS: "linux", Architecture: arch})
}

type env struct {
	upstream *httptest.Server
	count    *regtest.Counter
	proxy    *httptest.Server
	d        *daemon.Daemon
	cacheDir string
	cfg      config.Config
}

func host(s *httptest.Server) string     { return regtest.Host(s) }
func pathHost(s *httptest.Server) string { return regtest.PathHost(s) }

func newEnv(t *testing.T, upstream http.Handler) *env {
	t.Helper()
	return newEnvWith(t, upstream, config.Default())
}

// newEnvWith is newEnv with a config of the test's.
func newEnvWith(t *testing.T, upstream http.Handler, cfg config.Config) *env {
	t.Helper()
	e := &env{count: regtest.NewCounter(upstream), cacheDir: t.TempDir(), cfg: cfg}
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
	return regtest.Push(t, host(e.upstream), repo, tag, img)
}

// through is the proxy's name for an upstream repository.
func (e *env) through(repo string) string {
	return host(e.proxy) + "/" + pathHost(e.upstream) + "/" + repo
}

func randomImage(t testing.TB, mt types.MediaType, cfg v1.Config) v1.Image {
	return regtest.RandomImage(t, "amd64", mt, cfg)
}

func randomImageFor(t testing.TB, arch string, mt types.MediaType, cfg v1.Config) v1.Image {
	return regtest.RandomImage(t, arch, mt, cfg)
}

func mustRef(t testing.TB, s string) name.Reference { return regtest.MustRef(t, s) }

func checkInjected(t *testing.T, l layer.Built, base, got v1.Image) {
	t.Helper()
	regtest.CheckInjected(t, l, base, got)
}

type fixedKeychain = regtest.FixedKeychain

// TestCacheAndRestart: the daemon restarts over its cache, and the old
// rewritten digest still resolves, from the store, after the tag moved
// upstream. (That a warm pull is one HEAD is proxy's TestWarmPullIsOneHead.)
func TestCacheAndRestart(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	first := randomImage(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"a"}})
	e.push(t, "test/img", "latest", first)
	ref := mustRef(t, e.through("test/img")+":latest")

	d1, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
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
