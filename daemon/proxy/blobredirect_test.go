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
	// A container token's audience: its registry may be anywhere, but a
	// client is sent to a private address only on a host the developer
	// named, or the token's registry itself.
	token := dialpolicy.New("token", dialpolicy.Named("127.0.0.1:7070"))
	for _, tt := range []struct {
		name      string
		policy    *dialpolicy.Policy
		locations *dialpolicy.Policy // nil: policy's
		registry  string             // a public one is reached over https
		loc       string
		ok        bool
	}{
		{"public to public", anon(), nil, "203.0.113.9", "https://203.0.113.7/b?sig=x", true},
		{"https to plain HTTP", anon(), nil, "203.0.113.9", "http://203.0.113.7/b", false},
		{"public registry to loopback", anon(), nil, "203.0.113.9", "https://127.0.0.1/b", false},
		{"public registry to private, even for the developer", local, nil, "203.0.113.9", "https://10.0.0.1/b", false},
		{"public registry to link-local metadata", local, nil, "203.0.113.9", "https://169.254.169.254/latest", false},
		{"another scheme", local, nil, "127.0.0.1:5000", "file:///etc/passwd", false},
		{"credentials in the URL", local, nil, "127.0.0.1:5000", "http://user:pw@127.0.0.1:9000/b", false},
		{"loopback registry to an unlisted loopback", anon("127.0.0.1:5000"), nil, "127.0.0.1:5000", "http://127.0.0.1:9000/b", false},
		{"loopback registry to a listed loopback", anon("127.0.0.1:5000", "127.0.0.1:9000"), nil, "127.0.0.1:5000", "http://127.0.0.1:9000/b", true},
		{"the developer's own network", local, nil, "127.0.0.1:5000", "http://127.0.0.1:9000/b", true},
		{"the daemon's own listener", own, nil, "127.0.0.1:5000", "http://127.0.0.1:9090/v2/", false},
		{"token: private registry to an unnamed private address", local, token, "127.0.0.1:5000", "http://127.0.0.1:9000/b", false},
		{"token: private registry to a named private address", local, token, "127.0.0.1:5000", "http://127.0.0.1:7070/b", true},
		{"token: private registry back to itself", local, token, "127.0.0.1:5000", "http://127.0.0.1:5000/b", true},
		{"token: https to plain HTTP", local, token, "203.0.113.9", "http://203.0.113.7/b", false},
		{"token: public to public", local, token, "203.0.113.9", "https://203.0.113.7/b", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := proxy.NewUpstream(proxy.Options{Policy: tt.policy, Locations: tt.locations})
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
