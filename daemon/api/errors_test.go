package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tower-reg/tower-reg/daemon/errcode"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
)

func TestWriteError(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("outer: %w", err) }
	upstream := func(status int, codes ...transport.ErrorCode) error {
		te := &transport.Error{StatusCode: status}
		for _, c := range codes {
			te.Errors = append(te.Errors, transport.Diagnostic{Code: c, Message: "upstream says " + string(c)})
		}
		return wrap(te)
	}
	tests := []struct {
		name   string
		err    error
		kind   kind
		status int
		code   string
	}{
		{"api error", newError(405, codeUnsupported, "no"), kindManifest, 405, codeUnsupported},
		{"wrapped api error", wrap(newError(404, codeManifestUnknown, "no")), kindManifest, 404, codeManifestUnknown},
		{"name invalid", wrap(proxy.ErrNameInvalid), kindManifest, 400, codeNameInvalid},
		{"digest invalid", wrap(proxy.ErrDigestInvalid), kindBlob, 400, codeDigestInvalid},
		{"schema1", wrap(layer.ErrUnsupported), kindManifest, 415, codeUnsupported},
		{"upstream digest", &proxy.UpstreamDigestError{Digest: v1.Hash{Algorithm: "sha256", Hex: "ab"}}, kindManifest, 404, codeManifestUnknown},
		{"store miss, manifest", wrap(store.ErrNotFound), kindManifest, 404, codeManifestUnknown},
		{"store miss, blob", wrap(store.ErrNotFound), kindBlob, 404, codeBlobUnknown},
		{"upstream 404 with code", upstream(404, transport.NameUnknownErrorCode), kindManifest, 404, "NAME_UNKNOWN"},
		{"upstream 404 bare, manifest", upstream(404), kindManifest, 404, codeManifestUnknown},
		{"upstream 404 bare, blob", upstream(404), kindBlob, 404, codeBlobUnknown},
		{"upstream 401 bare", upstream(401), kindManifest, 401, codeUnauthorized},
		{"upstream 403 bare", upstream(403), kindManifest, 403, codeDenied},
		{"upstream 429", upstream(429, transport.TooManyRequestsErrorCode), kindManifest, 429, codeTooManyRequests},
		{"upstream 500", upstream(500, transport.UnknownErrorCode), kindBlob, 502, codeUnavailable},
		{"unreachable", wrap(proxy.ErrUnavailable), kindManifest, 503, codeUnavailable},
		{"digest mismatch", wrap(proxy.ErrDigestMismatch), kindManifest, 502, codeUnknown},
		{"timeout", wrap(context.DeadlineExceeded), kindManifest, 504, codeUnavailable},
		{"anything else", errors.New("boom"), kindManifest, 500, codeUnknown},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(method, "/v2/x/manifests/y", nil)
				got := writeError(w, r, slog.New(slog.DiscardHandler), tt.kind, tt.err)
				if got != tt.status || w.Code != tt.status {
					t.Fatalf("status %d (returned %d), want %d", w.Code, got, tt.status)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
				if method == http.MethodHead {
					if w.Body.Len() != 0 {
						t.Fatalf("HEAD answer has a body: %q", w.Body)
					}
					return
				}
				var body struct {
					Errors []errcode.Entry `json:"errors"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatalf("body %q: %v", w.Body, err)
				}
				if len(body.Errors) != 1 || body.Errors[0].Code != tt.code || body.Errors[0].Message == "" {
					t.Fatalf("errors %+v, want one %s with a message", body.Errors, tt.code)
				}
			})
		}
	}
}
