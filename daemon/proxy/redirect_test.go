package proxy

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

func TestCheckRedirect(t *testing.T) {
	req := func(ctx context.Context, url string) *http.Request {
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tt := range []struct {
		name       string
		from, to   string
		refused    bool
		fromPublic bool
	}{
		{"https to https, public origin", "https://203.0.113.7/v2/x/blobs/sha256:00", "https://cdn.example/b", false, true},
		{"https to plain HTTP", "https://203.0.113.7/v2/x", "http://cdn.example/b", true, false},
		{"https to plain HTTP on loopback", "https://203.0.113.7/v2/x", "http://127.0.0.1:9000/b", true, false},
		{"to another scheme", "http://127.0.0.1:5000/v2/x", "file:///etc/passwd", true, false},
		{"loopback origin stays trusted", "http://127.0.0.1:5000/v2/x", "http://127.0.0.1:9000/b", false, false},
		{"private origin stays trusted", "http://10.0.0.5:5000/v2/x", "http://10.0.0.6/b", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.WithValue(t.Context(), operationKey{}, &operation{})
			err := checkRedirect(req(ctx, tt.to), []*http.Request{req(ctx, tt.from)})
			if (err != nil) != tt.refused {
				t.Fatalf("checkRedirect %s -> %s: %v, want refused %v", tt.from, tt.to, err, tt.refused)
			}
			if err != nil && !errors.Is(err, dialpolicy.ErrRefused) {
				t.Errorf("refusal %v is not the dial policy's", err)
			}
			if got := operationOf(ctx).fromPublic.Load(); got != tt.fromPublic {
				t.Errorf("fromPublic %v, want %v", got, tt.fromPublic)
			}
		})
	}
}

// TestHopRouter: once an operation left a public registry, its hops go
// through the public-only transport, whose pool never holds a connection
// to a private address.
func TestHopRouter(t *testing.T) {
	var got []string
	rt := func(name string) http.RoundTripper {
		return roundTrip(func(*http.Request) (*http.Response, error) {
			got = append(got, name)
			return nil, errors.New("stop")
		})
	}
	h := hopRouter{next: rt("next"), public: rt("public")}
	op := &operation{}
	ctx := context.WithValue(t.Context(), operationKey{}, op)
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/", nil)
	h.RoundTrip(r)
	op.fromPublic.Store(true)
	h.RoundTrip(r)
	if len(got) != 2 || got[0] != "next" || got[1] != "public" {
		t.Errorf("hops went to %v, want [next public]", got)
	}
}

// TestSchemeGuardDowngrade: in an operation on a registry reached over
// https, no request (a token realm, a redirect) goes over plain HTTP, even
// to loopback, which plain HTTP may otherwise reach.
func TestSchemeGuardDowngrade(t *testing.T) {
	inner := roundTrip(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil })
	g := &schemeGuard{inner: inner, plain: dialpolicy.Loopback}
	for _, tt := range []struct {
		name    string
		https   bool
		url     string
		refused bool
	}{
		{"https registry, http realm on loopback", true, "http://127.0.0.1:5001/auth", true},
		{"loopback registry, http realm on loopback", false, "http://127.0.0.1:5001/auth", false},
		{"https registry, https realm", true, "https://auth.example/token", false},
		{"plain HTTP off loopback", false, "http://auth.example/token", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.WithValue(t.Context(), operationKey{}, &operation{https: tt.https})
			r, _ := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			_, err := g.RoundTrip(r)
			if (err != nil) != tt.refused {
				t.Fatalf("%s: %v, want refused %v", tt.url, err, tt.refused)
			}
		})
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
