package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// adminServer serves the admin routes with the real upstream client, as
// the local handler does, anonymous.
func adminServer(t *testing.T) *httptest.Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	o := proxy.Options{Log: log}.WithDefaults()
	o.Transport = proxy.NewTransport(o)
	mux := http.NewServeMux()
	api.NewAdmin(proxy.NewUpstream(o), event.NewBus(time.Now), func() admin.Status { return admin.Status{} }, nil, log).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestValidateCreds: POST /validate-creds asks the registry, by its own
// auth scheme, whether a login is good. (Moved down from daemon/, where it
// went through daemon.New: the same cases and assertions, against the
// admin routes and the real upstream client.)
func TestValidateCreds(t *testing.T) {
	open := httptest.NewServer(regtest.Registry()) // an open registry
	t.Cleanup(open.Close)
	adm := adminServer(t)
	bearer := regtest.AuthRegistry(t, "Bearer", "alice", "s3cret")
	basic := regtest.AuthRegistry(t, "Basic", "bob", "hunter2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed
	ln.Close()

	creds := func(user, pass, reg string) string {
		b, _ := json.Marshal(map[string]string{"userName": user, "password": pass, "registry": reg})
		return string(b)
	}
	tests := []struct {
		name   string
		body   string
		status int
		want   string // the body, or a substring of the error message
	}{
		{"bearer, right", creds("alice", "s3cret", regtest.Host(bearer)), 200, "true"},
		{"bearer, wrong password", creds("alice", "nope", regtest.Host(bearer)), 200, "false"},
		{"basic, right", creds("bob", "hunter2", regtest.Host(basic)), 200, "true"},
		{"basic, wrong user", creds("eve", "hunter2", regtest.Host(basic)), 200, "false"},
		{"open registry", creds("anyone", "x", regtest.Host(open)), 200, "true"},
		{"unreachable", creds("alice", "s3cret", closed), 502, closed},
		{"bad registry name", creds("alice", "s3cret", "Not A Host"), 400, "not a registry host"},
		{"missing fields", `{"password":"x"}`, 400, "missing userName, registry"},
		{"not JSON", `userName=alice`, 400, "not the expected JSON"},
		{"unknown field", `{"userName":"a","registry":"r.io","token":"x"}`, 400, "unknown field"},
		{"two values", creds("a", "b", "r.io") + `{}`, 400, "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(adm.URL+"/validate-creds", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status == 200 {
				if got := strings.TrimSpace(string(b)); got != tt.want {
					t.Fatalf("answer %s, want %s", got, tt.want)
				}
				return
			}
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &body); err != nil || len(body.Errors) != 1 {
				t.Fatalf("error body %s: %v", b, err)
			}
			if !strings.Contains(body.Errors[0].Message, tt.want) {
				t.Errorf("message %q lacks %q", body.Errors[0].Message, tt.want)
			}
			if strings.Contains(string(b), "s3cret") {
				t.Errorf("the password is in the answer: %s", b)
			}
		})
	}
	resp, err := http.Get(adm.URL + "/validate-creds")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /validate-creds: %d, want 405", resp.StatusCode)
	}
}

// fakeCreds is a CredsChecker that records what it was asked.
type fakeCreds struct {
	ok    bool
	err   error
	asked []string
}

func (f *fakeCreds) ValidateCreds(_ context.Context, registry, user, password string) (bool, error) {
	f.asked = append(f.asked, registry+" "+user+" "+password)
	return f.ok, f.err
}

// TestValidateCredsFake: the route hands the login to its CredsChecker as
// given, answers its verdict as JSON, and makes an unreachable registry a
// gateway's error, never false.
func TestValidateCredsFake(t *testing.T) {
	const body = `{"userName":"alice","password":"pw","registry":"reg.example"}`
	tests := []struct {
		name   string
		creds  fakeCreds
		status int
		want   string // the body, or the OCI error's code
	}{
		{"good", fakeCreds{ok: true}, 200, "true"},
		{"bad", fakeCreds{}, 200, "false"},
		{"unreachable", fakeCreds{err: fmt.Errorf("dial reg.example: %w", proxy.ErrUnavailable)}, 502, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			api.NewAdmin(&tt.creds, event.NewBus(time.Now), nil, nil, slog.New(slog.DiscardHandler)).Register(mux)
			w := httptest.NewRecorder()
			r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/validate-creds", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			mux.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, tt.status)
			}
			if want := []string{"reg.example alice pw"}; !slices.Equal(tt.creds.asked, want) {
				t.Errorf("asked %q, want %q", tt.creds.asked, want)
			}
			if tt.status == 200 {
				if got := strings.TrimSpace(w.Body.String()); got != tt.want {
					t.Errorf("answer %s, want %s", got, tt.want)
				}
				return
			}
			checkOCIError(t, answer{ResponseRecorder: w}, tt.want)
		})
	}
}
