package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/errcode"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/daemon/token"
	"github.com/tower-reg/tower-reg/layer"
)

// OCI distribution error codes.
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeUnsupported     = "UNSUPPORTED"
	codeUnauthorized    = "UNAUTHORIZED"
	codeDenied          = "DENIED"
	codeTooManyRequests = "TOOMANYREQUESTS"
	codeUnavailable     = "UNAVAILABLE"
	codeUnknown         = "UNKNOWN"
)

// apiError is an error with its OCI code and HTTP status chosen.
type apiError struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *apiError) Error() string { return e.Message }
func (e *apiError) Unwrap() error { return e.Err }

func newError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

// notFoundCode is the code for an upstream 404 that came without one.
func notFoundCode(k kind) string {
	switch k {
	case kindManifest:
		return codeManifestUnknown
	case kindBlob:
		return codeBlobUnknown
	default:
		return codeNameUnknown
	}
}

// classify maps any error to its status and OCI error entries. The order
// matters: our own apiError first, then domain sentinels, then the
// upstream's own answer, which keeps its code and status.
func classify(err error, k kind) (int, []errcode.Entry) {
	var ae *apiError
	var ude *proxy.UpstreamDigestError
	var te *transport.Error
	var ce *proxy.CredentialsError
	one := func(status int, code string) (int, []errcode.Entry) {
		return status, []errcode.Entry{{Code: code, Message: message(err)}}
	}
	switch {
	case errors.As(err, &ae):
		return ae.Status, []errcode.Entry{{Code: ae.Code, Message: ae.Message}}
	case errors.As(err, &ude):
		return one(http.StatusNotFound, codeManifestUnknown)
	case errors.Is(err, proxy.ErrNameInvalid):
		return one(http.StatusBadRequest, codeNameInvalid)
	case errors.Is(err, proxy.ErrDigestInvalid):
		return one(http.StatusBadRequest, codeDigestInvalid)
	case errors.Is(err, layer.ErrUnsupported):
		return one(http.StatusUnsupportedMediaType, codeUnsupported)
	case errors.Is(err, store.ErrNotFound):
		return one(http.StatusNotFound, notFoundCode(k))
	case errors.Is(err, dialpolicy.ErrRefused):
		return one(http.StatusForbidden, codeDenied)
	case errors.As(err, &ce):
		return http.StatusUnauthorized, credentialsError(ce)
	case errors.As(err, &te):
		return upstreamError(te, k, err)
	case errors.Is(err, proxy.ErrTimeout):
		return one(http.StatusGatewayTimeout, codeUnavailable)
	case errors.Is(err, proxy.ErrDigestMismatch), errors.Is(err, proxy.ErrTooLarge):
		return one(http.StatusBadGateway, codeUnknown)
	case errors.Is(err, proxy.ErrUnavailable):
		return one(http.StatusServiceUnavailable, codeUnavailable)
	case errors.Is(err, context.DeadlineExceeded):
		return one(http.StatusGatewayTimeout, codeUnavailable)
	}
	return one(http.StatusInternalServerError, codeUnknown)
}

// upstreamError keeps what the upstream registry said, so a client sees the
// registry's own code and message, with the proxy's context in front.
func upstreamError(te *transport.Error, k kind, err error) (int, []errcode.Entry) {
	status := te.StatusCode
	if status >= 500 || status < 400 {
		// The upstream failed, not the request: a gateway error that says
		// which registry, whatever the upstream put in its body.
		return http.StatusBadGateway, []errcode.Entry{{Code: codeUnavailable, Message: message(err)}}
	}
	var out []errcode.Entry
	for _, d := range te.Errors {
		out = append(out, errcode.Entry{Code: string(d.Code), Message: d.Message, Detail: d.Detail})
	}
	if len(out) == 0 {
		out = []errcode.Entry{{Code: statusCode(status, k), Message: message(err)}}
	}
	return status, out
}

// message is err's text for a client, without the body of an upstream
// answer that was no registry error: whatever a server put there (an HTML
// page, a banner, a file) is not the client's to read through tower-reg.
func message(err error) string {
	var te *transport.Error
	if !errors.As(err, &te) || len(te.Errors) > 0 {
		return err.Error()
	}
	bare := &transport.Error{StatusCode: te.StatusCode, Request: te.Request}
	return strings.Replace(err.Error(), te.Error(), bare.Error(), 1)
}

// statusCode is the OCI code of an upstream status that came without one.
func statusCode(status int, k kind) string {
	switch status {
	case http.StatusNotFound:
		return notFoundCode(k)
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusForbidden:
		return codeDenied
	case http.StatusTooManyRequests:
		return codeTooManyRequests
	}
	return codeUnknown
}

// credentialsError answers an upstream's 401: which registry wants
// credentials, and where the developer gives them. What the registry said
// goes in the detail, as JSON.
func credentialsError(ce *proxy.CredentialsError) []errcode.Entry {
	msg := fmt.Sprintf("%s wants credentials that tower-reg does not have or that it refused: "+
		"give them under `registries:` in tower-reg's config, or run `docker login %s` on the daemon's machine",
		ce.Registry, ce.Registry)
	e := errcode.Entry{Code: codeUnauthorized, Message: msg}
	var te *transport.Error
	if errors.As(ce, &te) && len(te.Errors) > 0 {
		e.Detail = te.Errors
	}
	return []errcode.Entry{e}
}

// basicChallenge answers an upstream's 401 on the local handler. RFC 7235
// wants a challenge with every 401, and clients such as regctl fail on one
// without. Basic, not Bearer: the local handler has no token endpoint to
// send a client to, and a client with no credentials for the daemon stops
// at a Basic challenge and shows the message (docker prints it).
const basicChallenge = `Basic realm="tower-reg"`

// challengeKey carries the challenge of the audience, which the public
// handler sets: its own Bearer challenge, whose login flow goes on.
type challengeKey struct{}

// WithChallenge returns ctx with the challenge that answers an upstream's
// 401 in place of basicChallenge.
func WithChallenge(ctx context.Context, challenge string) context.Context {
	return context.WithValue(ctx, challengeKey{}, challenge)
}

func challengeOf(ctx context.Context) string {
	if c, ok := ctx.Value(challengeKey{}).(string); ok && c != "" {
		return c
	}
	return basicChallenge
}

// writeError writes err as OCI error JSON. Server-side failures are logged;
// client mistakes are not, they are the client's to read.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, k kind, err error) int {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; there is nobody to answer.
		return 499
	}
	status, errs := classify(err, k)
	if status >= 500 {
		red := token.PathRedactor(r.URL.Path)
		log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("method", r.Method),
			slog.String("path", red.Replace(r.URL.Path)), slog.String("error", red.Replace(err.Error())))
	}
	h := w.Header()
	setRetryAfter(h, err)
	if status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", challengeOf(r.Context()))
	}
	errcode.Write(w, r, status, errs...)
	return status
}
