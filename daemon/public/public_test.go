package public

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/peer"
)

// named answers its name, and in X-Face the face the request is marked
// as having come through.
func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Face", peer.Face(r))
		io.WriteString(w, name)
	})
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestHandler(c *clock) *Handler {
	return New(Options{
		Full:      named("full"),
		Anonymous: named("anonymous"),
		// The daemon's real policies are tested with the daemon; here, a
		// name under "private/" stands for one anonymous clients may not
		// have.
		AnonymousAccess: func(p string) error {
			if strings.HasPrefix(p, "/v2/private/") {
				return errors.New("private/ is not public")
			}
			return nil
		},
		TokenRoute: func(p string) bool { return strings.HasPrefix(p, "/v2/wt/") },
		Login:      Credential{Username: "towerreg", Password: "s3cret"},
		Now:        c.now,
	})
}

func serve(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	return serveFrom(h, "192.0.2.1:1234", method, target, hdr)
}

// serveFrom is serve from the client address remote.
func serveFrom(h http.Handler, remote, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	r.Host = "reg.example.app"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func basic(user, pass string) map[string]string {
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}

func bearer(t string) map[string]string { return map[string]string{"Authorization": "Bearer " + t} }

// tokenFor asks the token endpoint, as a client does after a challenge.
func tokenFor(t *testing.T, h http.Handler, hdr map[string]string) string {
	t.Helper()
	w := serve(h, "GET", TokenPath+"?service=tower-reg&scope=repository:foo:pull", hdr)
	if w.Code != 200 {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Token == "" || body.Token != body.AccessToken || body.ExpiresIn <= 0 {
		t.Fatalf("token answer %s (%v)", w.Body, err)
	}
	return body.Token
}

func TestPublicRoutes(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	h := newTestHandler(c)
	anon := tokenFor(t, h, nil)
	loggedIn := tokenFor(t, h, basic("towerreg", "s3cret"))
	if anon == loggedIn {
		t.Fatal("an anonymous client got the logged-in token")
	}

	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		body               string // the handler that served, for 200s
	}{
		{"admin: validate-creds", "POST", "/validate-creds", nil, 404, ""},
		{"admin: container-token", "POST", "/container-token", bearer(loggedIn), 404, ""},
		{"admin: status", "GET", "/_towerreg/status", basic("towerreg", "s3cret"), 404, ""},
		{"admin: events", "GET", "/_towerreg/events", nil, 404, ""},
		{"admin: metrics", "GET", "/metrics", nil, 404, ""},
		{"ping without a token", "GET", "/v2/", nil, 401, ""},
		{"pull without a token", "GET", "/v2/foo/manifests/latest", nil, 401, ""},
		{"anonymous token", "GET", "/v2/foo/manifests/latest", bearer(anon), 200, "anonymous"},
		{"logged-in token", "GET", "/v2/foo/manifests/latest", bearer(loggedIn), 200, "full"},
		{"Basic login", "GET", "/v2/foo/blobs/sha256:00", basic("towerreg", "s3cret"), 200, "full"},
		{"Basic, wrong password", "GET", "/v2/", basic("towerreg", "nope"), 401, ""},
		{"Basic, wrong user", "GET", "/v2/", basic("root", "s3cret"), 401, ""},
		{"unknown token", "GET", "/v2/foo/manifests/latest", bearer("f00d"), 401, ""},
		{"container token route, anonymous", "GET", "/v2/wt/abc/foo/manifests/latest", bearer(anon), 200, "full"},
		{"container token route, no token", "GET", "/v2/wt/abc/foo/manifests/latest", nil, 401, ""},
		{"anonymous token, a name it may not have", "GET", "/v2/private/foo/manifests/latest", bearer(anon), 401, ""},
		{"logged in, the same name", "GET", "/v2/private/foo/manifests/latest", bearer(loggedIn), 200, "full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, tt.method, tt.path, tt.hdr)
			if w.Code != tt.status {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, w.Code, w.Body, tt.status)
			}
			if tt.status == 200 && w.Body.String() != tt.body {
				t.Errorf("served by %q, want %q", w.Body, tt.body)
			}
			// Every audience, the developer's of token routes too, counts
			// what it serves here against the public face.
			if tt.status == 200 && w.Header().Get("X-Face") != peer.FacePublic {
				t.Errorf("served as face %q, want %q", w.Header().Get("X-Face"), peer.FacePublic)
			}
			if tt.status == 401 {
				ch := w.Header().Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, `Bearer realm="http://reg.example.app/auth/token",service="tower-reg"`) {
					t.Errorf("challenge %q", ch)
				}
				if strings.Contains(tt.path, "/foo/") && !strings.Contains(ch, `scope="repository:`) {
					t.Errorf("challenge %q has no scope", ch)
				}
				var e struct {
					Errors []struct{ Code, Message string }
				}
				if json.Unmarshal(w.Body.Bytes(), &e) != nil || len(e.Errors) == 0 || e.Errors[0].Code != "UNAUTHORIZED" {
					t.Errorf("401 body %s", w.Body)
				}
				if tt.hdr != nil && e.Errors[0].Message != "" && !strings.Contains(e.Errors[0].Message, "docker login reg.example.app") {
					t.Errorf("401 message %q does not say how to log in", e.Errors[0].Message)
				}
			}
		})
	}
}

func TestPublicToken(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	h := newTestHandler(c)

	if w := serve(h, "GET", TokenPath, basic("towerreg", "wrong")); w.Code != 401 {
		t.Errorf("token with a wrong login: %d, want 401", w.Code)
	}
	if w := serve(h, "POST", TokenPath, nil); w.Code != 404 {
		t.Errorf("OAuth2 POST: %d, want 404 (clients then use GET)", w.Code)
	}

	tok := tokenFor(t, h, basic("towerreg", "s3cret"))
	c.t = c.t.Add(sessionTTL - time.Second)
	if w := serve(h, "GET", "/v2/", bearer(tok)); w.Code != 200 {
		t.Fatalf("token before expiry: %d", w.Code)
	}
	c.t = c.t.Add(time.Second)
	if w := serve(h, "GET", "/v2/", bearer(tok)); w.Code != 401 {
		t.Fatalf("token at expiry: %d, want 401", w.Code)
	}

	// Behind the tunnel's TLS edge the realm is https.
	w := serve(h, "GET", "/v2/", map[string]string{"X-Forwarded-Proto": "https"})
	if ch := w.Header().Get("WWW-Authenticate"); !strings.Contains(ch, `realm="https://reg.example.app/auth/token"`) {
		t.Errorf("challenge behind TLS %q", ch)
	}

	// With no login configured, no login works, not even an empty one.
	none := New(Options{Full: named("full"), Anonymous: named("anonymous")})
	if w := serve(none, "GET", TokenPath, basic("", "")); w.Code != 401 {
		t.Errorf("empty login with none configured: %d, want 401", w.Code)
	}
}

// TestWrongLoginBudget: a client's wrong logins, by either route (the
// token endpoint or Basic auth on the registry), draw from its one
// budget; once it is spent even its right password is refused with 429
// and Retry-After until it refills, and its anonymous pulls go on.
func TestWrongLoginBudget(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	h := newTestHandler(c)
	for i := range wrongLoginBurst {
		target := TokenPath
		if i%2 == 1 {
			target = "/v2/"
		}
		if w := serve(h, "GET", target, basic("towerreg", fmt.Sprint("guess", i))); w.Code != 401 {
			t.Fatalf("wrong login %d on %s: %d, want 401", i, target, w.Code)
		}
	}
	for _, tt := range []struct {
		name, target string
		hdr          map[string]string
		want         int
	}{
		{"one guess more", TokenPath, basic("towerreg", "guess"), 429},
		{"the right password, at the token endpoint", TokenPath, basic("towerreg", "s3cret"), 429},
		{"the right password, as Basic auth", "/v2/", basic("towerreg", "s3cret"), 429},
		{"an anonymous token", TokenPath, nil, 200},
		{"an anonymous pull", "/v2/foo/manifests/latest", bearer(anonymousToken), 200},
	} {
		w := serve(h, "GET", tt.target, tt.hdr)
		if w.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
		if tt.want == 429 {
			if ra := w.Header().Get("Retry-After"); ra != "6" || !strings.Contains(w.Body.String(), "TOOMANYREQUESTS") {
				t.Errorf("%s: Retry-After %q, body %s; want 6 s and TOOMANYREQUESTS", tt.name, ra, w.Body)
			}
		}
	}
	c.t = c.t.Add(wrongLoginRefill)
	tokenFor(t, h, basic("towerreg", "s3cret"))
	// A right login costs nothing from the budget.
	for range 3 * wrongLoginBurst {
		tokenFor(t, h, basic("towerreg", "s3cret"))
	}
}
