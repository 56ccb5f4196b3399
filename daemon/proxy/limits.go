package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/net/http/httpproxy"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

// Defaults for the zero Options.
const (
	// DefaultTimeout bounds one upstream operation, retries included: a
	// manifest, config or tags request from the first byte sent to the last
	// byte read, and for a blob the wait for its response headers. A
	// registry that answers nothing in a minute is down for a developer
	// waiting on `docker pull`.
	DefaultTimeout = 60 * time.Second
	// DefaultHeaderTimeout bounds one attempt's wait for response headers,
	// so that a retry still fits in DefaultTimeout.
	DefaultHeaderTimeout = 20 * time.Second
	// DefaultStallTimeout is how long a blob body may send nothing before
	// the transfer is cut: a big layer may take an hour, but not an hour of
	// silence.
	DefaultStallTimeout = 60 * time.Second
	// DefaultMaxConnsPerHost bounds the connections to one registry host,
	// idle and busy: Docker pulls three layers at once per client, so this
	// serves a score of clients at full speed and queues the rest instead
	// of opening a connection per request to a registry that rate-limits.
	DefaultMaxConnsPerHost = 64
)

// ErrTimeout marks an upstream that did not answer, or stopped sending,
// within its bound.
var ErrTimeout = errors.New("upstream timed out")

// NewTransport returns the tuned base transport of Upstreams: share one
// between Upstreams so that MaxConnsPerHost bounds the connections to a
// registry whichever audience asks.
func NewTransport(o Options) http.RoundTripper {
	o = o.WithDefaults()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.MaxConnsPerHost = o.MaxConnsPerHost
	t.ResponseHeaderTimeout = o.HeaderTimeout
	p := o.Policy
	if p == nil {
		p = dialpolicy.New("local", dialpolicy.AnyHost)
	}
	t.DialContext = p.DialContext
	// Behind an HTTP(S)_PROXY the transport dials the proxy, which the
	// developer named: the policy lets it through, and the proxy decides
	// where the request goes from there.
	if px := envProxies(); len(px) > 0 {
		t.DialContext = p.Through(px...).DialContext
	}
	return t
}

// envProxies are the host:port of the proxies the environment names.
func envProxies() []string {
	c := httpproxy.FromEnvironment()
	var out []string
	for _, v := range []string{c.HTTPProxy, c.HTTPSProxy} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		out = append(out, net.JoinHostPort(u.Hostname(), port))
	}
	return out
}

// WithDefaults fills the bounds left zero with the Default values.
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	return o
}

// bound is one upstream operation's deadline. It is a timer that cancels
// the operation's context with an ErrTimeout cause, rather than a context
// deadline, so that a blob's bound can be lifted once its headers are in:
// the body then runs under the stall watchdog instead.
type bound struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func newBound(ctx context.Context, d time.Duration, what string) *bound {
	ctx, cancel := context.WithCancelCause(ctx)
	b := &bound{ctx: ctx, cancel: cancel}
	b.timer = time.AfterFunc(d, func() {
		cancel(fmt.Errorf("%w: %s: no answer within %s", ErrTimeout, what, d))
	})
	return b
}

// err turns an error seen under the bound into the timeout that caused
// it, if one did.
func (b *bound) err(err error) error {
	if c := context.Cause(b.ctx); errors.Is(c, ErrTimeout) {
		return c
	}
	return err
}

func (b *bound) release() {
	b.timer.Stop()
	b.cancel(nil)
}

// boundBody releases the bound when the body is closed, and reports a read
// cut by it as the timeout.
type boundBody struct {
	io.ReadCloser
	b *bound
}

func (r *boundBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.err(err)
	}
	return n, err
}

func (r *boundBody) Close() error {
	err := r.ReadCloser.Close()
	r.b.release()
	return err
}

// stallBody is a blob body under a watchdog: each read that brings bytes
// re-arms it; a body silent for longer than the stall bound is cut.
type stallBody struct {
	io.ReadCloser
	b     *bound
	stall time.Duration
}

func (u *Upstream) watchStall(resp *http.Response, b *bound, what string) {
	b.timer.Stop()
	stall := u.stall
	b.timer = time.AfterFunc(stall, func() {
		b.cancel(fmt.Errorf("%w: %s: nothing received for %s", ErrTimeout, what, stall))
	})
	resp.Body = &stallBody{ReadCloser: resp.Body, b: b, stall: stall}
}

func (r *stallBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.b.timer.Reset(r.stall)
	}
	if err != nil && err != io.EOF {
		err = r.b.err(err)
	}
	return n, err
}

func (r *stallBody) Close() error {
	err := r.ReadCloser.Close()
	r.b.release()
	return err
}

// RetryAfterError is an upstream that asked to be left alone for a while
// (429, or 503 with Retry-After): the client is told the same.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter is how long the upstream asked to wait.
func (e *RetryAfterError) RetryAfter() time.Duration { return e.After }

// withRetryAfter keeps the upstream's Retry-After on its refusal: seconds,
// or an HTTP date (RFC 9110 allows both; a date in the past means now).
func withRetryAfter(resp *http.Response, err error, now time.Time) error {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return err
	}
	v := resp.Header.Get("Retry-After")
	if s, perr := strconv.Atoi(v); perr == nil && s >= 0 {
		return &RetryAfterError{Err: err, After: time.Duration(s) * time.Second}
	}
	if t, perr := http.ParseTime(v); perr == nil {
		return &RetryAfterError{Err: err, After: max(t.Sub(now), 0)}
	}
	return err
}

// retryable reports whether a failed GET or HEAD is worth another try: the
// registry's retryable statuses and temporary network errors, as ggcr
// decides, and also a connection reset or closed before the answer, which a
// load balancer that drops a connection gives.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && tmp.Temporary() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
