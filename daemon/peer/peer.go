// Package peer tells who a client of the public handler is, and bounds
// what one client may hold at once. A client is an IP address: the TCP
// peer on --public-listen, and behind the tunnel the address the tunnel's
// edge forwards, which only the tunnel's listener trusts.
package peer

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client is who sent a request.
type Client struct {
	// IP is the client's address; the zero Addr when it is unknown.
	IP netip.Addr
	// Tunnel is set for a request that came through the tunnel: its IP is
	// the one the tunnel's edge forwarded.
	Tunnel bool
}

// Key names the client in the per-client bounds. IPv6 clients are taken
// by /64, the block one machine or one network is given, so that a host
// cannot take a fresh budget from each of its addresses. Tunnel clients
// have keys of their own, so that none shares the budget of a client on
// this machine.
func (c Client) Key() string {
	k := "unknown"
	if c.IP.IsValid() {
		k = c.IP.String()
		if c.IP.Is6() {
			p, _ := c.IP.Prefix(64) // never fails for a valid IPv6 address and 64
			k = p.String()
		}
	}
	if c.Tunnel {
		return "tunnel " + k
	}
	return k
}

type ctxKey struct{}

// Of returns the client of r: the forwarded one that Forwarded recorded,
// else the TCP peer.
func Of(r *http.Request) Client {
	if c, ok := r.Context().Value(ctxKey{}).(Client); ok {
		return c
	}
	return Client{IP: parseIP(r.RemoteAddr)}
}

// Forwarded records, for next and Of, the client that the tunnel's edge
// forwarded in X-Forwarded-For. Serve it on the tunnel's listener only:
// anywhere else the header is whatever the client wrote. ngrok appends
// the address it saw to any value the client sent, so only the last
// entry is the edge's; the earlier ones are the client's own claims. A
// request without one keeps the connection's peer, which the ngrok agent
// sets to the address the edge saw, too.
func Forwarded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := Client{IP: lastForwarded(r.Header.Values("X-Forwarded-For")), Tunnel: true}
		if !c.IP.IsValid() {
			c.IP = parseIP(r.RemoteAddr)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// lastForwarded is the last address of X-Forwarded-For values: each may
// be a list, and the header may come more than once.
func lastForwarded(values []string) netip.Addr {
	if len(values) == 0 {
		return netip.Addr{}
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return parseIP(strings.TrimSpace(last))
}

// parseIP reads an address with or without a port; the zero Addr if it
// is neither.
func parseIP(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

// Local reports whether the client is this machine: a loopback address,
// or one of the machine's own, reached directly (never through the
// tunnel, whose forwarded addresses are the internet's).
func (c Client) Local() bool {
	if c.Tunnel || !c.IP.IsValid() {
		return false
	}
	if c.IP.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == c.IP {
			return true
		}
	}
	return false
}

type publicKey struct{}

// ThroughPublic marks r as having come through the public handler. What
// a request costs differs by face: the tunnel's plan counts the public
// face's bytes, and the audiences that serve it (token routes use the
// developer's) do not tell which face a request came through.
func ThroughPublic(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), publicKey{}, true))
}

// Face names the handler r came through: "public" when ThroughPublic
// marked it, else "local".
func Face(r *http.Request) string {
	if pub, _ := r.Context().Value(publicKey{}).(bool); pub {
		return FacePublic
	}
	return FaceLocal
}

// The faces, as events and metrics name them.
const (
	FaceLocal  = "local"
	FacePublic = "public"
)
