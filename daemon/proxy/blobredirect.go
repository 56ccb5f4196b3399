package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

// redirectCodes are the upstream answers to a blob GET that are a
// redirect to pass on.
var redirectCodes = []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
	http.StatusTemporaryRedirect, http.StatusPermanentRedirect}

type keepRedirectKey struct{}

// keepRedirect reports whether the request's client stops at the first
// redirect, for its caller to pass on rather than follow.
func keepRedirect(ctx context.Context) bool {
	v, _ := ctx.Value(keepRedirectKey{}).(bool)
	return v
}

// BlobOrRedirect starts a blob GET that does not follow the upstream's
// redirect. It returns either the whole blob's transfer, for the caller
// to stream and close, or the redirect's absolute Location, unread.
func (u *Upstream) BlobOrRedirect(ctx context.Context, repo Repo, d v1.Hash) (*http.Response, *url.URL, error) {
	ctx = context.WithValue(ctx, keepRedirectKey{}, true)
	ok := append([]int{http.StatusOK}, redirectCodes...)
	resp, err := u.doBounded(ctx, repo, http.MethodGet, u.url(repo, "blobs", d.String()), nil, true, ok...)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil, nil
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: blob %s: a %d without a usable Location: %w", ErrUnavailable, repo, d, resp.StatusCode, err)
	}
	return nil, loc, nil
}

// CheckLocation decides whether a client of this Upstream's audience may
// be sent to loc, where repo's registry redirected a blob GET: by the
// rules the daemon itself follows redirects by (checkRedirect, hopRouter),
// with the audience's location policy (Options.Locations, by default its
// dial policy) checked on each address loc's host resolves to. The client dials it, not the daemon, but the daemon must
// not point an internet client at an address it would refuse to reach
// for it.
func (u *Upstream) CheckLocation(ctx context.Context, repo Repo, loc *url.URL) error {
	if s := loc.Scheme; s != "http" && s != "https" {
		return fmt.Errorf("%w: a redirect to a %q URL", dialpolicy.ErrRefused, s)
	}
	if loc.User != nil {
		return fmt.Errorf("%w: a redirect with credentials in its URL (%s)", dialpolicy.ErrRefused, loc.Hostname())
	}
	if !u.plainHTTP(repo.Host()) && loc.Scheme != "https" {
		return fmt.Errorf("%w: a redirect from https to plain HTTP (%s)", dialpolicy.ErrRefused, loc.Hostname())
	}
	port := loc.Port()
	if port == "" {
		port = "80"
		if loc.Scheme == "https" {
			port = "443"
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%w: a redirect to port %q", dialpolicy.ErrRefused, port)
	}
	ips, err := resolve(ctx, loc.Hostname())
	if err != nil {
		return fmt.Errorf("%w: a redirect to %s, which does not resolve", dialpolicy.ErrRefused, loc.Hostname())
	}
	// Away from a registry on a public address, the hops reach public
	// addresses only (see hopRouter).
	fromPublic := publicHost(ctx, (&url.URL{Host: repo.Host()}).Hostname())
	hostport := net.JoinHostPort(loc.Hostname(), port)
	// The registry that redirected may send the client back to itself,
	// wherever it is: the client reached it through the daemon anyway.
	pol := u.locations.Through(repo.Host())
	for _, ip := range ips {
		if fromPublic && !dialpolicy.Public(ip) {
			return fmt.Errorf("%w: %s resolves to %s, not a public address, and the redirect came from a public registry", dialpolicy.ErrRefused, hostport, ip)
		}
		if err := pol.Check(hostport, netip.AddrPortFrom(ip, uint16(p))); err != nil {
			return err
		}
	}
	return nil
}

// resolve is the addresses host names: all of them must pass, since the
// client may dial any.
func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
