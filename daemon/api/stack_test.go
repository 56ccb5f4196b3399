package api_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/internal/regtest"
	"github.com/tower-reg/tower-reg/layer"
)

// stack is the registry handler over the real proxy (Upstream, Rewriting,
// Blobs with the local blob mode) and a store in a temporary directory,
// in front of an upstream of the test's: the path of a pull through the
// local handler, without the daemon around it.
type stack struct {
	upstream *httptest.Server
	count    *regtest.Counter
	proxy    *httptest.Server
	reg      *api.Registry
	storeDir string
	gen      proxy.Generation
}

// newStack serves upstream and starts a stack in front of it, anonymous.
func newStack(t *testing.T, upstream http.Handler) *stack {
	t.Helper()
	s := &stack{count: regtest.NewCounter(upstream), storeDir: t.TempDir()}
	s.upstream = httptest.NewServer(s.count)
	t.Cleanup(s.upstream.Close)
	s.start(t, nil)
	return s
}

// start (re)starts the stack over the same store, as the daemon does on
// a restart, with the keychain kc (nil: anonymous).
func (s *stack) start(t *testing.T, kc authn.Keychain) {
	t.Helper()
	if s.proxy != nil {
		s.proxy.Close()
	}
	if kc == nil {
		kc = authn.NewMultiKeychain() // never the host's docker config
	}
	st, err := store.Open(s.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := layer.PackSet(t.Context(), regtest.Layer(), st)
	if err != nil {
		t.Fatal(err)
	}
	if s.gen, err = proxy.NewGeneration(1, set); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	o := proxy.Options{Keychain: kc, Log: log}.WithDefaults()
	o.Transport = proxy.NewTransport(o)
	up := proxy.NewUpstream(o)
	rw := proxy.NewRewriting(up, st, proxy.StaticLayers{Gen: s.gen})
	blobs := proxy.NewBlobs(rw, up, proxy.BlobStream, log)
	s.reg = api.NewRegistry(rw, blobs, up, "docker.io", event.NewBus(time.Now), log)
	s.proxy = httptest.NewServer(s.reg)
	t.Cleanup(s.proxy.Close)
	t.Cleanup(s.reg.Wait) // before the store's directory is removed
}

// push writes img to the upstream under repo:tag and returns its digest.
func (s *stack) push(t *testing.T, repo, tag string, img remote.Taggable) v1.Hash {
	t.Helper()
	return regtest.Push(t, regtest.Host(s.upstream), repo, tag, img)
}

// through is the stack's name for an upstream repository.
func (s *stack) through(repo string) string {
	return regtest.Host(s.proxy) + "/" + regtest.PathHost(s.upstream) + "/" + repo
}

// layerFor is the layer the stack must have appended to an image of arch.
func (s *stack) layerFor(arch string) layer.Built {
	return s.gen.Set.For(&v1.Platform{OS: "linux", Architecture: arch})
}
