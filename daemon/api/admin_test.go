package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
