package peer

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestForwarded: on the tunnel's handler, the client is the last
// X-Forwarded-For entry, the one the edge appended; what the client wrote
// before it is ignored. Without the wrapper (--public-listen), the header
// is ignored and the TCP peer is the client.
func TestForwarded(t *testing.T) {
	tests := []struct {
		name   string
		xff    []string
		remote string
		want   string // Key with Forwarded
	}{
		{"edge's address", []string{"203.0.113.7"}, "127.0.0.1:5000", "tunnel 203.0.113.7"},
		{"client's claim before the edge's", []string{"127.0.0.1, 10.0.0.1,203.0.113.7"}, "127.0.0.1:5000", "tunnel 203.0.113.7"},
		{"header twice: the last", []string{"127.0.0.1", "203.0.113.8"}, "127.0.0.1:5000", "tunnel 203.0.113.8"},
		{"IPv6 by /64", []string{"2001:db8:1:2:3:4:5:6"}, "127.0.0.1:5000", "tunnel 2001:db8:1:2::/64"},
		{"no header: the peer the agent reports", nil, "198.51.100.9:443", "tunnel 198.51.100.9"},
		{"garbage: the peer", []string{"not an address"}, "198.51.100.9:443", "tunnel 198.51.100.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v2/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			var got Client
			Forwarded(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = Of(r) })).ServeHTTP(httptest.NewRecorder(), r)
			if got.Key() != tt.want {
				t.Errorf("forwarded client %q, want %q", got.Key(), tt.want)
			}
			direct := Of(r)
			if want := (Client{IP: netip.MustParseAddrPort(tt.remote).Addr()}).Key(); direct.Key() != want || direct.Tunnel {
				t.Errorf("client without Forwarded %+v, want the peer %s", direct, want)
			}
		})
	}
}

// TestFace: a request is local unless ThroughPublic marked it.
func TestFace(t *testing.T) {
	r := httptest.NewRequest("GET", "/v2/", nil)
	if got := Face(r); got != FaceLocal {
		t.Errorf("unmarked request: face %q, want %q", got, FaceLocal)
	}
	if got := Face(ThroughPublic(r)); got != FacePublic {
		t.Errorf("marked request: face %q, want %q", got, FacePublic)
	}
}
