package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// TestUnauthorizedAnswers: every 401 carries a challenge (RFC 7235; regctl
// fails on "empty challenge header"), the audience's own when it set one,
// and an upstream's 401 says which registry wants credentials and how to
// give them, with what the registry said as JSON detail, not a Go dump.
func TestUnauthorizedAnswers(t *testing.T) {
	hub := &transport.Error{StatusCode: 401, Errors: []transport.Diagnostic{{
		Code: transport.UnauthorizedErrorCode, Message: "authentication required",
		Detail: []any{map[string]any{"Type": "repository", "Name": "library/x", "Action": "pull"}},
	}}}
	creds := &proxy.CredentialsError{Registry: "reg.example:5000", Err: fmt.Errorf("reg.example:5000: %w", hub)}
	const bearer = `Bearer realm="https://pub.example/token",service="tower-reg"`
	tests := []struct {
		name      string
		err       error
		challenge string // set by the audience; "" for the local handler
		wantAuth  string
		wantMsg   []string
		detail    bool
	}{
		{"upstream wants credentials, local", creds, "", basicChallenge,
			[]string{"reg.example:5000 wants credentials", "`registries:`", "`docker login reg.example:5000`"}, true},
		{"upstream wants credentials, public", creds, bearer, bearer,
			[]string{"reg.example:5000 wants credentials"}, true},
		{"our own 401", newError(401, codeUnauthorized, "token expired"), "", basicChallenge,
			[]string{"token expired"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v2/x/manifests/latest", nil)
			if tt.challenge != "" {
				r = r.WithContext(WithChallenge(context.Background(), tt.challenge))
			}
			w := httptest.NewRecorder()
			if got := writeError(w, r, slog.New(slog.DiscardHandler), kindManifest, tt.err); got != 401 {
				t.Fatalf("status %d, want 401", got)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantAuth)
			}
			var body struct {
				Errors []struct {
					Code, Message string
					Detail        json.RawMessage
				}
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			e := body.Errors[0]
			for _, want := range tt.wantMsg {
				if !strings.Contains(e.Message, want) {
					t.Errorf("message %q does not say %q", e.Message, want)
				}
			}
			if strings.Contains(e.Message, "map[") {
				t.Errorf("message %q has a Go map dump", e.Message)
			}
			if tt.detail && !strings.Contains(string(e.Detail), `"Action":"pull"`) {
				t.Errorf("detail %s, want the registry's detail as JSON", e.Detail)
			}
		})
	}
}

// TestNoChallengeBeyond401: other statuses carry no challenge.
func TestNoChallengeBeyond401(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v2/x/manifests/latest", nil)
	writeError(w, r, slog.New(slog.DiscardHandler), kindManifest, &transport.Error{StatusCode: 404})
	if got := w.Header().Get("WWW-Authenticate"); got != "" {
		t.Errorf("404 with WWW-Authenticate %q", got)
	}
}
