package proxy_test

import (
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// TestCheckLocation: a redirect is passed on to a client only where the
// audience's dial policy, and the rules the daemon follows redirects by,
// would let the daemon itself go.
func TestCheckLocation(t *testing.T) {
	anon := func(hosts ...string) *dialpolicy.Policy {
		return dialpolicy.New("anonymous", dialpolicy.Named(hosts...))
	}
	local := dialpolicy.New("local", dialpolicy.AnyHost)
	own := dialpolicy.New("local", dialpolicy.AnyHost)
	own.SetOwn(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090})
	for _, tt := range []struct {
		name     string
		policy   *dialpolicy.Policy
		registry string // a public one is reached over https
		loc      string
		ok       bool
	}{
		{"public to public", anon(), "203.0.113.9", "https://203.0.113.7/b?sig=x", true},
		{"https to plain HTTP", anon(), "203.0.113.9", "http://203.0.113.7/b", false},
		{"public registry to loopback", anon(), "203.0.113.9", "https://127.0.0.1/b", false},
		{"public registry to private, even for the developer", local, "203.0.113.9", "https://10.0.0.1/b", false},
		{"public registry to link-local metadata", local, "203.0.113.9", "https://169.254.169.254/latest", false},
		{"another scheme", local, "127.0.0.1:5000", "file:///etc/passwd", false},
		{"credentials in the URL", local, "127.0.0.1:5000", "http://user:pw@127.0.0.1:9000/b", false},
		{"loopback registry to an unlisted loopback", anon("127.0.0.1:5000"), "127.0.0.1:5000", "http://127.0.0.1:9000/b", false},
		{"loopback registry to a listed loopback", anon("127.0.0.1:5000", "127.0.0.1:9000"), "127.0.0.1:5000", "http://127.0.0.1:9000/b", true},
		{"the developer's own network", local, "127.0.0.1:5000", "http://127.0.0.1:9000/b", true},
		{"the daemon's own listener", own, "127.0.0.1:5000", "http://127.0.0.1:9090/v2/", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := proxy.NewUpstream(proxy.Options{Policy: tt.policy})
			loc, err := url.Parse(tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			err = up.CheckLocation(t.Context(), proxy.Repo{Registry: tt.registry, Path: "x"}, loc)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckLocation(%s) = %v, want ok %v", tt.loc, err, tt.ok)
			}
			if err != nil && !errors.Is(err, dialpolicy.ErrRefused) {
				t.Errorf("refusal %v is not the dial policy's", err)
			}
		})
	}
}
