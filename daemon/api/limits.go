package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"
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
