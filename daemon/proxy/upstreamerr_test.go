package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

// TestClassifyTexts: a registry's error answer reads without Go dumps of
// its details, and a 401 names the registry that wants credentials.
func TestUpstreamFailureTexts(t *testing.T) {
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: "reg.example", Path: "/v2/x/manifests/latest", RawQuery: "token=secret"}}
	repo := Repo{Registry: "reg.example", Path: "x"}
	for _, tc := range []struct {
		name  string
		te    *transport.Error
		want  string
		creds bool
	}{
		{"manifest unknown", &transport.Error{StatusCode: 404, Request: req, Errors: []transport.Diagnostic{
			{Code: transport.ManifestUnknownErrorCode, Message: "manifest unknown", Detail: map[string]any{"Tag": "latest"}}}},
			"reg.example: wrapped: GET https://reg.example/v2/x/manifests/latest: MANIFEST_UNKNOWN: manifest unknown", false},
		{"unauthorized", &transport.Error{StatusCode: 401, Request: req, Errors: []transport.Diagnostic{
			{Code: transport.UnauthorizedErrorCode, Message: "authentication required", Detail: []any{map[string]any{"Action": "pull"}}}}},
			"reg.example: wrapped: GET https://reg.example/v2/x/manifests/latest: UNAUTHORIZED: authentication required", true},
		{"two diagnostics", &transport.Error{StatusCode: 403, Errors: []transport.Diagnostic{
			{Code: transport.DeniedErrorCode, Message: "no", Detail: map[string]any{"a": 1}},
			{Code: transport.DeniedErrorCode, Message: "still no"}}},
			"reg.example: wrapped: DENIED: no; DENIED: still no", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := upstreamFailure(repo, fmt.Errorf("wrapped: %w", tc.te))
			if got := err.Error(); got != tc.want {
				t.Errorf("text %q\nwant %q", got, tc.want)
			}
			var te *transport.Error
			if !errors.As(err, &te) || te != tc.te {
				t.Error("the registry's answer is lost")
			}
			var ce *CredentialsError
			if got := errors.As(err, &ce); got != tc.creds || (got && ce.Registry != "reg.example") {
				t.Errorf("CredentialsError %v (%+v), want %v", got, ce, tc.creds)
			}
		})
	}
}

// TestRealmRefusedIsPolicy: what ggcr's realm check still refuses is a
// policy's refusal (403 in the API), not an unavailable upstream (503).
func TestRealmRefusedIsPolicy(t *testing.T) {
	repo := Repo{Registry: "reg.example", Path: "x"}
	err := upstreamFailure(repo, errors.New(`invalid realm in www-authenticate: realm scheme "http" not allowed for a secure registry; use https`))
	if !errors.Is(err, dialpolicy.ErrRefused) || errors.Is(err, ErrUnavailable) {
		t.Errorf("%v: want ErrRefused, not ErrUnavailable", err)
	}
	if err := upstreamFailure(repo, errors.New("connection refused")); errors.Is(err, dialpolicy.ErrRefused) {
		t.Errorf("%v: a dead upstream is no policy refusal", err)
	}
	// The dial policy's own refusal, of the token realm or of the registry,
	// as ggcr and net/http wrap it: a refusal, and not said to be an outage.
	dial := fmt.Errorf(`Get "http://localhost:5001/token": dial tcp 127.0.0.1:5001: %w`,
		fmt.Errorf("%w: localhost:5001 resolves to 127.0.0.1, a loopback address, which logged-in clients may not reach", dialpolicy.ErrRefused))
	err = upstreamFailure(repo, dial)
	if !errors.Is(err, dialpolicy.ErrRefused) || errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "unavailable") {
		t.Errorf("%v: want ErrRefused, not ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "reg.example") {
		t.Errorf("%v: the registry is not named", err)
	}
}
