package dialpolicy

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestPublic(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"0.0.0.0", false},
		{"::", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"100.64.0.1", false}, // carrier-grade NAT, Tailscale
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
	} {
		if got := Public(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Public(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	named := func(h string) bool { return h == "reg.lan:5000" }
	p := New("anonymous", named)
	p.SetOwn(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, &net.TCPAddr{IP: net.IPv6zero, Port: 8443})
	dev := New("local", AnyHost)
	dev.SetOwn(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, &net.TCPAddr{IP: net.IPv6zero, Port: 8443})
	for _, tt := range []struct {
		name     string
		p        *Policy
		host     string
		addr     string
		refused  bool
		mentions string
	}{
		{"anonymous, public", p, "registry-1.docker.io:443", "34.1.2.3:443", false, ""},
		{"anonymous, loopback", p, "localhost:5000", "127.0.0.1:5000", true, "loopback"},
		{"anonymous, mapped loopback", p, "x.example:80", "[::ffff:127.0.0.1]:80", true, "loopback"},
		{"anonymous, metadata", p, "169.254.169.254:80", "169.254.169.254:80", true, "link-local"},
		{"anonymous, unspecified", p, "0.0.0.0:5000", "0.0.0.0:5000", true, "unspecified"},
		{"anonymous, a named private registry", p, "reg.lan:5000", "10.0.0.5:5000", false, ""},
		{"anonymous, the named registry's other port", p, "reg.lan:22", "10.0.0.5:22", true, "private"},
		{"own local listener", dev, "127.0.0.1:9090", "127.0.0.1:9090", true, "own listener"},
		{"own listener, by 0.0.0.0", dev, "0.0.0.0:9090", "0.0.0.0:9090", true, "own listener"},
		{"own wildcard listener, by loopback", dev, "localhost:8443", "[::1]:8443", true, "own listener"},
		{"own listener, even when named", p, "reg.lan:5000", "127.0.0.1:9090", true, "own listener"},
		{"developer, loopback registry", dev, "127.0.0.1:5000", "127.0.0.1:5000", false, ""},
		{"developer, private", dev, "reg.corp:443", "10.9.8.7:443", false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Check(tt.host, netip.MustParseAddrPort(tt.addr))
			if (err != nil) != tt.refused {
				t.Fatalf("Check(%s, %s) = %v, want refused: %v", tt.host, tt.addr, err, tt.refused)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.mentions) || !strings.Contains(err.Error(), "dial policy") {
				t.Errorf("refusal %q: want ErrRefused naming the policy and %q", err, tt.mentions)
			}
		})
	}
}

// TestDialRefusesBeforeConnecting dials a listener the policy refuses: the
// refusal comes from the policy, and the listener never sees a connection.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	for _, tt := range []struct {
		name string
		p    *Policy
		addr string
	}{
		{"anonymous, by address", New("anonymous", nil), ln.Addr().String()},
		{"anonymous, by a name that resolves to loopback", New("anonymous", nil), strings.Replace(ln.Addr().String(), "127.0.0.1", "localhost", 1)},
		{"own listener", func() *Policy { p := New("local", AnyHost); p.SetOwn(ln.Addr()); return p }(), ln.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.p.DialContext(t.Context(), "tcp", tt.addr)
			if err == nil {
				c.Close()
				t.Fatalf("dial %s: connected", tt.addr)
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("dial %s: %v, want ErrRefused", tt.addr, err)
			}
		})
	}
	select {
	case <-accepted:
		t.Error("the listener accepted a connection the policy refused")
	default:
	}
	// The same listener, for the developer: allowed.
	c, err := New("local", AnyHost).DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("developer dial: %v", err)
	}
	c.Close()
}

func TestThroughKeepsOwn(t *testing.T) {
	p := New("anonymous", nil)
	q := p.Through("proxy.corp:3128")
	own := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}
	p.SetOwn(own) // named after Through: the listeners are known late
	if err := q.Check("proxy.corp:3128", netip.MustParseAddrPort("10.0.0.3:3128")); err != nil {
		t.Errorf("the configured proxy: %v", err)
	}
	if err := q.Check("127.0.0.1:9090", netip.MustParseAddrPort("127.0.0.1:9090")); !errors.Is(err, ErrRefused) {
		t.Errorf("own listener through the proxy policy: %v", err)
	}
}
