package daemon_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon/config"
)

// tokenUpstream is registry:2 with auth.token: a registry that wants a
// Bearer token, and a token server of its own on another port, named in the
// challenge by IP, as in `realm: http://10.0.0.5:5001/auth`.
type tokenUpstream struct {
	reg, auth *httptest.Server
	tokens    atomic.Int32
}

const upstreamToken = "tok-realm"

func newTokenUpstream(t *testing.T) *tokenUpstream {
	t.Helper()
	u := &tokenUpstream{}
	u.auth = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/auth" || r.URL.Query().Get("service") != "test-registry" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		u.tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"expires_in":300}`, upstreamToken)
	}))
	t.Cleanup(u.auth.Close)
	inner := registry.New(registry.Logger(quiet))
	u.reg = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+upstreamToken {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/auth",service="test-registry"`, u.auth.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(u.reg.Close)
	return u
}

// withToken sends the token on every request, so that the ping gets no
// challenge: ggcr itself would refuse the realm.
type withToken struct{}

func (withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+upstreamToken)
	return http.DefaultTransport.RoundTrip(r)
}

// seed pushes an image with the token, straight to the registry.
func (u *tokenUpstream) seed(t *testing.T, repo string) v1.Image {
	t.Helper()
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	ref := mustRef(t, host(u.reg)+"/"+repo+":latest")
	if err := remote.Write(ref, img, remote.WithTransport(withToken{})); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestTokenRealmOnLoopback: a realm on another loopback port, which ggcr's
// own realm check refuses, works from the local handler; to an anonymous
// public client, whose registry is allowed but whose realm's host is not,
// the dial policy refuses it as a 403 that says so, not as a 503.
func TestTokenRealmOnLoopback(t *testing.T) {
	up := newTokenUpstream(t)
	up.seed(t, "test/img")
	cfg := config.Default()
	cfg.Public.AnonymousRegistries = []string{host(up.reg)}
	s := servePublic(t, cfg, authn.NewMultiKeychain())

	img, err := remote.Image(mustRef(t, s.local+"/"+under(host(up.reg))+"/test/img:latest"))
	if err != nil {
		t.Fatalf("pull through the local handler: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	if up.tokens.Load() == 0 {
		t.Fatal("the token server was never asked")
	}

	before := up.tokens.Load()
	resp, e := anonGet(t, "http://"+s.public+"/v2/"+under(host(up.reg))+"/test/img/manifests/latest")
	code, msg := e.first()
	if resp.StatusCode != http.StatusForbidden || code != "DENIED" {
		t.Fatalf("anonymous public pull: %d %s %q, want 403 DENIED", resp.StatusCode, code, msg)
	}
	for _, want := range []string{"dial policy", host(up.auth)} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "unavailable") {
		t.Errorf("message %q calls the policy's refusal an unavailable upstream", msg)
	}
	if n := up.tokens.Load() - before; n != 0 {
		t.Errorf("the token server was asked %d times for the public client", n)
	}
}
