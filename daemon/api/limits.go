package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// retryAfter is an error that tells when to try again: an upstream's 429,
// or one of the daemon's own rate limits.
type retryAfter interface{ RetryAfter() time.Duration }

// setRetryAfter sets the Retry-After header of an error answer, in whole
// seconds, rounded up so that a client that waits that long is let in.
func setRetryAfter(h http.Header, err error) {
	var ra retryAfter
	if !errors.As(err, &ra) {
		return
	}
	s := int64((ra.RetryAfter() + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(s, 1), 10))
}

// MaxURLLength bounds a request's path and query. A registry path is a
// repository name (at most 255 characters in the distribution spec), a
// reference of at most 128, and for a container token 32 more: 8 KiB is
// far above any real request and far below what costs memory to parse.
const MaxURLLength = 8 << 10

// LimitURL answers a request whose URL is over MaxURLLength with 414 and
// NAME_INVALID, before any handler parses it.
func LimitURL(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(r.RequestURI); n > MaxURLLength {
			k := kindUnknown
			if IsRegistryPath(r.URL.Path) {
				k = parseRoute(r.URL.Path).kind
			}
			writeError(w, r, slog.New(slog.DiscardHandler), k, newError(http.StatusRequestURITooLong, codeNameInvalid,
				fmt.Sprintf("the URL is %d bytes long, over the limit of %d", n, MaxURLLength)))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// DefaultTokenRequestsPerMinute bounds POST /container-token when the
// config says nothing: each request may fetch gigabytes of layers and
// resolve an image upstream with the developer's credentials, and a tool
// in a loop should be told to slow down before it fills the disk.
const DefaultTokenRequestsPerMinute = 60

// setTokenRate is AdminTokenRate.
func (a *Admin) setTokenRate(perMinute int) {
	if perMinute == 0 {
		perMinute = DefaultTokenRequestsPerMinute
	}
	if perMinute < 0 {
		a.tokenRate = nil
		return
	}
	a.tokenRate = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
}

// allowToken takes a token request from the rate limit, or tells when the
// next one will be let in.
func (a *Admin) allowToken() error {
	if a.tokenRate == nil {
		return nil
	}
	res := a.tokenRate.Reserve()
	d := res.Delay()
	if d == 0 {
		return nil
	}
	res.Cancel()
	return &retryLater{
		err: newError(http.StatusTooManyRequests, codeTooManyRequests,
			fmt.Sprintf("too many container token requests: at most %.0f a minute; try again in %s", float64(a.tokenRate.Limit())*60, d.Round(time.Second))),
		after: d,
	}
}

// retryLater is one of the daemon's own limits: an OCI error, and when to
// try again.
type retryLater struct {
	err   *apiError
	after time.Duration
}

func (e *retryLater) Error() string             { return e.err.Error() }
func (e *retryLater) Unwrap() error             { return e.err }
func (e *retryLater) RetryAfter() time.Duration { return e.after }
