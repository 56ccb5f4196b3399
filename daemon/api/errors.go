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
	"github.com/tower-reg/tower-reg/daemon/fetch"
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

// classify maps any error to its status and OCI error entries, by the
// first row of classifyTable that matches it on the route k, else 500
// UNKNOWN.
func classify(err error, k kind) (int, []errcode.Entry) {
	for _, row := range classifyTable {
		if (row.kind == kindAny || row.kind == k) && row.match(err) {
			return row.answer(err, k)
		}
	}
	return fixed(http.StatusInternalServerError, codeUnknown)(err, k)
}

// kindAny is a row of classifyTable that holds on every route.
const kindAny kind = -1

// classifyRow is one row of classifyTable: the errors it matches on the
// route kind (kindAny: on all), and their answer.
type classifyRow struct {
	kind   kind
	match  func(error) bool
	answer func(error, kind) (int, []errcode.Entry)
}

// classifyTable is every choice of a status for an error. The order
// matters: our own apiError first; then the rows of a route, which say
// what an error means there (the same ErrUnavailable is a 502 to
// validate-creds, where the registry was the whole question, and a 424
// to a container token request, which depended on it); then the domain
// sentinels; then the upstream's own answer, which keeps its code and
// status.
var classifyTable = []classifyRow{
	{kindAny, isAs[*apiError], func(err error, _ kind) (int, []errcode.Entry) {
		ae, _ := errors.AsType[*apiError](err)
		return ae.Status, []errcode.Entry{{Code: ae.Code, Message: ae.Message}}
	}},

	// POST /container-token: the request's own faults are 400s that name
	// the field, the image's are the status of what the registry said,
	// and a registry that cannot be reached is a 424.
	{kindContainerToken, imageRegistryAnswer, imageAnswer},
	{kindContainerToken, both(isAs[*token.ImageError], either(is(proxy.ErrNameInvalid), is(proxy.ErrDigestInvalid))),
		whole(http.StatusBadRequest, codeNameInvalid)},
	{kindContainerToken, isAs[*token.ImageError], func(err error, _ kind) (int, []errcode.Entry) {
		ie, _ := errors.AsType[*token.ImageError](err)
		return http.StatusFailedDependency, []errcode.Entry{{Code: codeUnavailable,
			Message: "containerImage " + ie.Image + ": the registry could not be reached: " + ie.Err.Error()}}
	}},
	{kindContainerToken, both(isAs[*token.FieldError], isAs[*http.MaxBytesError]), whole(http.StatusRequestEntityTooLarge, codeBadRequest)},
	{kindContainerToken, both(isAs[*token.FieldError], isAs[*fetch.MismatchError]), whole(http.StatusBadRequest, codeDigestInvalid)},
	{kindContainerToken, isAs[*token.FieldError], whole(http.StatusBadRequest, codeBadRequest)},

	// POST /validate-creds: a registry that cannot be asked is an error,
	// never false, and a gateway's: the registry was the whole question.
	{kindValidateCreds, is(proxy.ErrUnavailable), whole(http.StatusBadGateway, codeUnavailable)},

	{kindAny, isAs[*proxy.UpstreamDigestError], fixed(http.StatusNotFound, codeManifestUnknown)},
	{kindAny, is(proxy.ErrNameInvalid), fixed(http.StatusBadRequest, codeNameInvalid)},
	{kindAny, is(proxy.ErrDigestInvalid), fixed(http.StatusBadRequest, codeDigestInvalid)},
	{kindAny, is(layer.ErrUnsupported), fixed(http.StatusUnsupportedMediaType, codeUnsupported)},
	{kindAny, is(store.ErrNotFound), func(err error, k kind) (int, []errcode.Entry) {
		return fixed(http.StatusNotFound, notFoundCode(k))(err, k)
	}},
	{kindAny, is(dialpolicy.ErrRefused), fixed(http.StatusForbidden, codeDenied)},
	{kindAny, isAs[*proxy.CredentialsError], func(err error, _ kind) (int, []errcode.Entry) {
		ce, _ := errors.AsType[*proxy.CredentialsError](err)
		return http.StatusUnauthorized, credentialsError(ce)
	}},
	{kindAny, isAs[*transport.Error], func(err error, k kind) (int, []errcode.Entry) {
		te, _ := errors.AsType[*transport.Error](err)
		return upstreamError(te, k, err)
	}},
	{kindAny, is(proxy.ErrTimeout), fixed(http.StatusGatewayTimeout, codeUnavailable)},
	{kindAny, either(is(proxy.ErrDigestMismatch), either(is(proxy.ErrTooLarge), is(proxy.ErrBadAnswer))), fixed(http.StatusBadGateway, codeUnknown)},
	{kindAny, is(proxy.ErrUnavailable), fixed(http.StatusServiceUnavailable, codeUnavailable)},
	{kindAny, is(context.DeadlineExceeded), fixed(http.StatusGatewayTimeout, codeUnavailable)},
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isAs[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}

func both(a, b func(error) bool) func(error) bool {
	return func(err error) bool { return a(err) && b(err) }
}

func either(a, b func(error) bool) func(error) bool {
	return func(err error) bool { return a(err) || b(err) }
}

// fixed answers with status and code, and the error's text for a client
// (see message).
func fixed(status int, code string) func(error, kind) (int, []errcode.Entry) {
	return func(err error, _ kind) (int, []errcode.Entry) {
		return status, []errcode.Entry{{Code: code, Message: message(err)}}
	}
}

// whole answers with status and code, and the error's whole text: the
// admin routes' errors name what the request got wrong.
func whole(status int, code string) func(error, kind) (int, []errcode.Entry) {
	return func(err error, _ kind) (int, []errcode.Entry) {
		return status, []errcode.Entry{{Code: code, Message: err.Error()}}
	}
}

// imageRegistryAnswer matches a container token's image that its registry
// refused (a 4xx): the answer is the registry's.
func imageRegistryAnswer(err error) bool {
	te, ok := errors.AsType[*transport.Error](err)
	return isAs[*token.ImageError](err) && ok && te.StatusCode < 500
}

// imageAnswer passes a 404, 401, 403 or 429 of the image's registry on,
// with its code, and makes any other refusal a 400.
func imageAnswer(err error, _ kind) (int, []errcode.Entry) {
	ie, _ := errors.AsType[*token.ImageError](err)
	te, _ := errors.AsType[*transport.Error](err)
	status, code, msg := te.StatusCode, statusCode(te.StatusCode, kindManifest), err.Error()
	switch status {
	case http.StatusNotFound:
		msg = "containerImage " + ie.Image + " not found: " + ie.Err.Error()
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
	default:
		status = http.StatusBadRequest
	}
	return status, []errcode.Entry{{Code: code, Message: msg}}
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
