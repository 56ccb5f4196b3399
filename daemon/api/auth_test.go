package api_test

// Upstreams that ask for credentials, through the registry handler over
// the real proxy: moved down from daemon/daemon_test.go, where they went
// through daemon.New.

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

// TestBearerAuth runs the upstream behind a token server, the way Docker Hub
// and quay.io work, and checks that the token is fetched once and reused.
func TestBearerAuth(t *testing.T) {
	const user, pass, token = "alice", "s3cret", "tok-123"
	gate := &regtest.BearerGate{User: user, Pass: pass, Token: token, Next: regtest.Registry()}
	srv := httptest.NewServer(gate)
	t.Cleanup(srv.Close)

	// Seed the upstream with credentials, then proxy with and without them.
	e := &stack{count: regtest.NewCounter(srv.Config.Handler), storeDir: t.TempDir(), upstream: srv}
	ref := regtest.MustRef(t, regtest.Host(srv)+"/test/private:latest")
	base := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(ref, base, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}

	// Anonymous first; then the developer logs in while the daemon runs,
	// and the next pull must use the new credentials: a transport refused
	// once is not kept.
	kc := &regtest.LoginKeychain{}
	e.start(t, kc)
	_, err := remote.Image(regtest.MustRef(t, e.through("test/private")+":latest"))
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous pull of a private image: %v, want UNAUTHORIZED", err)
	}

	kc.Login(regtest.FixedKeychain{regtest.Host(srv): &authn.Basic{Username: user, Password: pass}})
	gate.Tokens.Store(0)
	for range 3 {
		img, err := remote.Image(regtest.MustRef(t, e.through("test/private")+":latest"))
		if err != nil {
			t.Fatalf("pull with credentials: %v", err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatal(err)
		}
	}
	if n := gate.Tokens.Load(); n != 1 {
		t.Fatalf("%d token requests for 3 pulls, want 1 (tokens must be reused)", n)
	}
}

// TestBasicAuthLogin: against a registry with Basic auth, the transport of
// an anonymous client is made without a token exchange, so it is cached;
// after a login it must still give way to the new credentials.
func TestBasicAuthLogin(t *testing.T) {
	reg := regtest.Registry()
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
	e := &stack{count: regtest.NewCounter(srv.Config.Handler), storeDir: t.TempDir(), upstream: srv}
	base := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(regtest.MustRef(t, regtest.Host(srv)+"/test/private:latest"), base, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	kc := &regtest.LoginKeychain{}
	e.start(t, kc)
	ref := regtest.MustRef(t, e.through("test/private")+":latest")
	if _, err := remote.Image(ref); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous pull: %v, want UNAUTHORIZED", err)
	}
	kc.Login(regtest.FixedKeychain{regtest.Host(srv): &authn.Basic{Username: user, Password: pass}})
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull after login: %v", err)
	}
	regtest.CheckInjected(t, e.layerFor("amd64"), base, img)
}
