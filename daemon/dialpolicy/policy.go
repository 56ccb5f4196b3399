// Package dialpolicy decides which addresses the daemon may connect to on
// behalf of a client. It is checked when a connection is made, on the
// address the name resolved to, so that a name that resolves to loopback,
// or resolves differently the second time (DNS rebinding), cannot take the
// daemon where its client may not go.
package dialpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ErrRefused marks a connection the policy refused. Its messages name the
// policy and the address dialed, and nothing the far side said: no
// connection was made.
var ErrRefused = errors.New("refused by tower-reg's dial policy")

// Policy is the dial policy of one audience.
type Policy struct {
	audience string
	// private reports whether host (as dialed: "name:port") may be reached
	// on a loopback, private, link-local or unspecified address.
	private func(hostport string) bool
	own     *listeners
}

// listeners are the daemon's own, known once it listens.
type listeners struct {
	mu    sync.RWMutex
	addrs []netip.AddrPort
}

// New returns the policy of an audience ("local", "anonymous"...), named in
// its refusals. private decides which hosts may resolve to addresses that
// are not public; nil means none may.
func New(audience string, private func(hostport string) bool) *Policy {
	if private == nil {
		private = func(string) bool { return false }
	}
	return &Policy{audience: audience, private: private, own: &listeners{}}
}

// AnyHost lets every host reach private addresses: the developer's own
// audience, who can reach them anyway.
func AnyHost(string) bool { return true }

// Named lets the hosts listed reach private addresses: "host" on any port,
// "host:port" on that port.
func Named(hosts ...string) func(hostport string) bool {
	set := map[string]bool{}
	for _, h := range hosts {
		set[h] = true
	}
	return func(hostport string) bool {
		if set[hostport] {
			return true
		}
		h, _, err := net.SplitHostPort(hostport)
		return err == nil && set[h]
	}
}

// Through returns a policy that also lets hosts (as dialed, "name:port")
// reach private addresses: the proxies the developer configured, which the
// transport dials in place of the registry.
func (p *Policy) Through(hosts ...string) *Policy {
	allowed := map[string]bool{}
	for _, h := range hosts {
		allowed[h] = true
	}
	inner := p.private
	return &Policy{audience: p.audience, own: p.own, private: func(h string) bool { return allowed[h] || inner(h) }}
}

// SetOwn names the daemon's own listeners, which no upstream connection may
// reach, whatever the audience: the local handler pulls with the
// developer's credentials, so an upstream named after it would lend them
// to whoever asked.
func (p *Policy) SetOwn(addrs ...net.Addr) {
	var own []netip.AddrPort
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			own = append(own, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	p.own.mu.Lock()
	p.own.addrs = own
	p.own.mu.Unlock()
}

// Check decides whether host (as dialed, "name:port") may be reached at
// addr.
func (p *Policy) Check(hostport string, addr netip.AddrPort) error {
	ip := addr.Addr().Unmap()
	if p.isOwn(netip.AddrPortFrom(ip, addr.Port())) {
		return fmt.Errorf("%w: %s is this tower-reg's own listener", ErrRefused, addr)
	}
	if !Public(ip) && !p.private(hostport) {
		return fmt.Errorf("%w: %s resolves to %s, a %s address, which %s clients may not reach", ErrRefused, hostport, ip, kind(ip), p.audience)
	}
	return nil
}

func (p *Policy) isOwn(a netip.AddrPort) bool {
	p.own.mu.RLock()
	defer p.own.mu.RUnlock()
	for _, o := range p.own.addrs {
		if o.Port() != a.Port() {
			continue
		}
		// A listener on 0.0.0.0 or [::] is reached on every address of
		// this machine, and a dial to 0.0.0.0 reaches this machine.
		if o.Addr() == a.Addr() || (o.Addr().IsUnspecified() && local(a.Addr())) ||
			(a.Addr().IsUnspecified() && local(o.Addr())) {
			return true
		}
	}
	return false
}

// local reports whether ip is one of this machine's addresses.
func local(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: refuse rather than risk a loop
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// cgnat is the shared address space of RFC 6598, which carriers and
// some VPNs (Tailscale) use for hosts that are not on the internet.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Public reports whether ip is an address on the internet: not loopback,
// private, link-local (where cloud metadata services live), unspecified,
// multicast or shared carrier space.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

func kind(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate() || cgnat.Contains(ip):
		return "private"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsUnspecified():
		return "unspecified"
	}
	return "non-public"
}

// DialContext dials addr ("name:port") like net.Dialer, with the policy
// checked on each address the name resolves to, before the connection is
// attempted.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s is not an address", ErrRefused, address)
			}
			return p.Check(addr, ap)
		},
	}
	return d.DialContext(ctx, network, addr)
}
