package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

// maxRedirects is as many hops as net/http follows by default.
const maxRedirects = 10

// operation is what the transports below the authenticating one need to
// know of the upstream operation a request belongs to: its requests (the
// ping, the token exchange, the redirects) each go through them alone.
type operation struct {
	// https is set when the registry is reached over TLS: then no request
	// of the operation may go over plain HTTP, neither a token realm nor a
	// redirect, where a network attacker could read or answer it.
	https bool
	// fromPublic is set once the operation was redirected away from a
	// registry on a public address: the hops after that may not reach a
	// private one.
	fromPublic atomic.Bool
}

type operationKey struct{}

// withOperation marks ctx as one operation on the registry at host.
func (u *Upstream) withOperation(ctx context.Context, host string) context.Context {
	if op, ok := ctx.Value(operationKey{}).(*operation); ok && op != nil {
		return ctx // the dial inside a request: the same operation
	}
	return context.WithValue(ctx, operationKey{}, &operation{https: !u.plainHTTP(host)})
}

func operationOf(ctx context.Context) *operation {
	op, _ := ctx.Value(operationKey{}).(*operation)
	return op
}

// checkRedirect is the http.Client's redirect policy: no more hops than
// net/http takes (none when the caller keeps the redirect), no downgrade from https, and once away from a public
// registry, public addresses only (see hopRouter).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if keepRedirect(req.Context()) {
		// The caller passes the redirect on, once checked by CheckLocation.
		return http.ErrUseLastResponse
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return fmt.Errorf("%w: a redirect to a %q URL", dialpolicy.ErrRefused, s)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: a redirect from https to plain HTTP (%s)", dialpolicy.ErrRefused, req.URL.Host)
	}
	op := operationOf(req.Context())
	if op == nil || op.fromPublic.Load() {
		return nil
	}
	if publicHost(req.Context(), via[0].URL.Hostname()) {
		op.fromPublic.Store(true)
	}
	return nil
}

// publicHost reports whether host resolves to public addresses only. A
// name that does not resolve counts as public: the stricter reading.
func publicHost(ctx context.Context, host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return dialpolicy.Public(ip)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return true
	}
	for _, ip := range ips {
		if !dialpolicy.Public(ip) {
			return false
		}
	}
	return true
}

// hopRouter sends the hops of an operation redirected away from a public
// registry through a transport of their own, whose dial policy allows
// public addresses only. A transport of their own, and not just a check,
// because a connection that another request opened to a private address
// would be reused without any dial to check.
type hopRouter struct {
	next, public http.RoundTripper
}

func (h hopRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if op := operationOf(r.Context()); op != nil && op.fromPublic.Load() {
		return h.public.RoundTrip(r)
	}
	return h.next.RoundTrip(r)
}
