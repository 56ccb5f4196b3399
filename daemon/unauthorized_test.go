package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/tower-reg/tower-reg/daemon/config"
)

// TestUpstreamWantsCredentials: an upstream's 401 reaches the client with a
// challenge (RFC 7235; regctl fails on "empty challenge header") and a
// message that names the registry and how to give it credentials. The
// local handler's challenge is Basic; the public handler's is its own
// Bearer one, so that a client with the daemon's login goes on to send it.
func TestUpstreamWantsCredentials(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"test/img","Action":"pull"}]}]}`))
	}))
	t.Cleanup(up.Close)
	cfg := config.Default()
	cfg.Public.AnonymousRegistries = []string{host(up)}
	s := servePublic(t, cfg, authn.NewMultiKeychain())
	path := "/v2/" + under(host(up)) + "/test/img/manifests/latest"

	for _, tc := range []struct {
		name, url, challenge string
	}{
		{"local", "http://" + s.local + path, `Basic realm="tower-reg"`},
		{"public", "http://" + s.public + path, `Bearer realm="http://` + s.public + `/`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, e := anonGet(t, tc.url)
			code, msg := e.first()
			if resp.StatusCode != http.StatusUnauthorized || code != "UNAUTHORIZED" {
				t.Fatalf("%d %s %q, want 401 UNAUTHORIZED", resp.StatusCode, code, msg)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want %s…", got, tc.challenge)
			}
			for _, want := range []string{host(up) + " wants credentials", "registries:", "docker login " + host(up)} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "map[") {
				t.Errorf("message %q has a Go map dump", msg)
			}
		})
	}
}
