package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// TestClassifyRoutes: the rows of a route refine what an error means
// there, and only there.
func TestClassifyRoutes(t *testing.T) {
	unavailable := fmt.Errorf("%w: quay.io: dial tcp: connection refused", proxy.ErrUnavailable)
	timedOut := fmt.Errorf("%w: quay.io: %w", proxy.ErrUnavailable, proxy.ErrTimeout)
	image := func(err error) error { return &token.ImageError{Image: "quay.io/a/b:c", Err: err} }
	refused := func(status int) error {
		return fmt.Errorf("quay.io: %w", &transport.Error{StatusCode: status})
	}
	field := func(err error) error { return &token.FieldError{Field: "containerConfig.layers[0]", Err: err} }
	tests := []struct {
		name    string
		err     error
		kind    kind
		status  int
		code    string
		message string // a part of it
	}{
		{"unreachable, pull", unavailable, kindManifest, 503, codeUnavailable, "connection refused"},
		{"unreachable, validate-creds", unavailable, kindValidateCreds, 502, codeUnavailable, "connection refused"},
		{"timed out, validate-creds: still the gateway's", timedOut, kindValidateCreds, 502, codeUnavailable, "quay.io"},
		{"timed out, pull", timedOut, kindManifest, 504, codeUnavailable, "quay.io"},
		{"unreachable image, container token", image(unavailable), kindContainerToken, 424, codeUnavailable,
			"containerImage quay.io/a/b:c: the registry could not be reached: "},
		{"unreachable image, elsewhere", image(unavailable), kindUnknown, 503, codeUnavailable, "connection refused"},
		{"image not found", image(refused(404)), kindContainerToken, 404, codeManifestUnknown, "containerImage quay.io/a/b:c not found: "},
		{"image denied", image(refused(403)), kindContainerToken, 403, codeDenied, "containerImage quay.io/a/b:c: "},
		{"image rate-limited", image(refused(429)), kindContainerToken, 429, codeTooManyRequests, ""},
		{"image refused otherwise", image(refused(400)), kindContainerToken, 400, codeUnknown, ""},
		{"image name invalid", image(proxy.ErrNameInvalid), kindContainerToken, 400, codeNameInvalid, "containerImage"},
		{"field", field(fmt.Errorf("missing")), kindContainerToken, 400, codeBadRequest, "missing"},
		{"field over the limit", field(&http.MaxBytesError{Limit: 10}), kindContainerToken, 413, codeBadRequest, ""},
		{"field digest mismatch", field(&fetch.MismatchError{Field: "gzipDigest", Expected: "sha256:aa", Actual: "sha256:bb"}),
			kindContainerToken, 400, codeDigestInvalid, "gzipDigest"},
		{"field, elsewhere", field(fmt.Errorf("missing")), kindManifest, 500, codeUnknown, "missing"},
		{"our own answer first, even on a route", newError(http.StatusForbidden, codeDenied, "requests from web pages are refused"),
			kindContainerToken, 403, codeDenied, "web pages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, errs := classify(tt.err, tt.kind)
			if status != tt.status || len(errs) != 1 || errs[0].Code != tt.code {
				t.Fatalf("classify = %d %+v, want %d %s", status, errs, tt.status, tt.code)
			}
			if !strings.Contains(errs[0].Message, tt.message) || errs[0].Message == "" {
				t.Errorf("message %q, want it to hold %q", errs[0].Message, tt.message)
			}
		})
	}
}
