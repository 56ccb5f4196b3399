package fetch

import (
	"errors"
	"fmt"
)

// Errors that Fetch wraps, so callers can tell a bad request (the caller's
// location or digests are wrong) from a failing host.
var (
	// ErrLocation is a location Fetch will not try: a disallowed scheme or
	// host, credentials in the URL, a relative file path, or a redirect to
	// any of those.
	ErrLocation = errors.New("location refused")
	// ErrTooLarge is a layer whose gzipSize is above the configured limit.
	ErrTooLarge = errors.New("layer too large")
	// ErrNotGzip is a body that does not start as a gzip stream.
	ErrNotGzip = errors.New("layer is not gzip-compressed")
	// ErrCorrupt is a body that matched its size and gzip digest but does
	// not decompress to a tar archive.
	ErrCorrupt = errors.New("layer is not a valid gzipped tar")
	// ErrRedirects is a chain of more redirects than allowed.
	ErrRedirects = errors.New("too many redirects")
	// ErrTimeout is a host that did not answer, or finish, in time.
	ErrTimeout = errors.New("timed out")
	// ErrStatus is an HTTP answer other than 200 OK; see StatusError.
	ErrStatus = errors.New("unexpected HTTP status")
)

// MismatchError is a layer whose bytes differ from what the request said.
// Field is the request's name for it: gzipSize, gzipDigest or tarDigest.
type MismatchError struct {
	Field    string
	Expected string
	Actual   string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s mismatch: expected %s, got %s", e.Field, e.Expected, e.Actual)
}

// StatusError is a location host that answered with something else than
// 200 OK. It wraps ErrStatus.
type StatusError struct {
	Code   int
	Status string
}

func (e *StatusError) Error() string { return "location answered " + e.Status }

// Unwrap makes errors.Is(err, ErrStatus) hold.
func (e *StatusError) Unwrap() error { return ErrStatus }
