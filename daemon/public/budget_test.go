package public

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/peer"
)

// lockOut spends the budget of the client at remote with wrong logins.
func lockOut(t *testing.T, h http.Handler, remote string) {
	t.Helper()
	for i := range wrongLoginBurst {
		if w := serveFrom(h, remote, "GET", TokenPath, basic("towerreg", fmt.Sprint("guess", i))); w.Code != 401 {
			t.Fatalf("wrong login %d from %s: %d, want 401", i, remote, w.Code)
		}
	}
	if w := serveFrom(h, remote, "GET", TokenPath, basic("towerreg", "s3cret")); w.Code != 429 {
		t.Fatalf("%s after its budget: %d, want 429", remote, w.Code)
	}
}

// TestWrongLoginBudgetPerClient: one address that spent its budget of
// wrong logins is locked out alone. Another address, the developer's own
// (loopback) and, behind the tunnel, another forwarded client still log
// in; an IPv6 client is one /64.
func TestWrongLoginBudgetPerClient(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	h := newTestHandler(c)
	lockOut(t, h, "198.51.100.1:5000")
	for _, remote := range []string{"198.51.100.1:6000", "[2001:db8:1:2::1]:5000"} {
		if remote == "[2001:db8:1:2::1]:5000" {
			lockOut(t, h, remote)
			remote = "[2001:db8:1:2::ffff]:7000" // the same /64
		}
		if w := serveFrom(h, remote, "GET", TokenPath, basic("towerreg", "s3cret")); w.Code != 429 {
			t.Errorf("%s, a locked-out client: %d, want 429", remote, w.Code)
		}
	}
	for _, remote := range []string{"198.51.100.2:5000", "127.0.0.1:5000", "[::1]:5000", "[2001:db8:1:3::1]:5000"} {
		if w := serveFrom(h, remote, "GET", TokenPath, basic("towerreg", "s3cret")); w.Code != 200 {
			t.Errorf("%s, while 198.51.100.1 is locked out: %d %s, want 200", remote, w.Code, w.Body)
		}
	}

	// Behind the tunnel every connection is the agent's (here 127.0.0.1):
	// the client is the forwarded address, and none of them is the
	// developer's own.
	tun := peer.Forwarded(h)
	fwd := func(client, pass string) int {
		r := httptest.NewRequest("GET", TokenPath, nil)
		r.RemoteAddr = "127.0.0.1:4000"
		r.Header.Set("X-Forwarded-For", client)
		r.SetBasicAuth("towerreg", pass)
		w := httptest.NewRecorder()
		tun.ServeHTTP(w, r)
		return w.Code
	}
	for i := range wrongLoginBurst {
		if code := fwd("203.0.113.1", fmt.Sprint("guess", i)); code != 401 {
			t.Fatalf("forwarded wrong login %d: %d, want 401", i, code)
		}
	}
	if code := fwd("203.0.113.1", "s3cret"); code != 429 {
		t.Errorf("the forwarded client that guessed: %d, want 429", code)
	}
	if code := fwd("127.0.0.1, 203.0.113.1", "s3cret"); code != 429 {
		t.Errorf("the same client claiming loopback first: %d, want 429", code)
	}
	if code := fwd("203.0.113.2", "s3cret"); code != 200 {
		t.Errorf("another forwarded client: %d, want 200", code)
	}
	if w := serveFrom(h, "127.0.0.1:5000", "GET", TokenPath, basic("towerreg", "s3cret")); w.Code != 200 {
		t.Errorf("the developer on loopback, after a tunnel client guessed: %d, want 200", w.Code)
	}
}

// TestLoginBudgetsBounded: the budgets kept are bounded. Past the bound a
// new address shares the overflow budget, so many addresses together
// still guess at a bounded rate; the developer's own address still gets
// its own; budgets that refilled are swept, which makes room again.
func TestLoginBudgetsBounded(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	h := newTestHandler(c)
	h.wrong.max = 4
	for i := range h.wrong.max {
		serveFrom(h, fmt.Sprintf("198.51.100.%d:5000", i+1), "GET", TokenPath, basic("towerreg", "guess"))
	}
	// Ten new addresses, one wrong login each: the overflow's ten.
	for i := range wrongLoginBurst {
		if w := serveFrom(h, fmt.Sprintf("203.0.113.%d:5000", i+1), "GET", TokenPath, basic("towerreg", "guess")); w.Code != 401 {
			t.Fatalf("new address %d past the bound: %d, want 401", i, w.Code)
		}
	}
	if n := len(h.wrong.byClient); n != h.wrong.max {
		t.Errorf("%d budgets kept, want the bound %d", n, h.wrong.max)
	}
	for _, tt := range []struct {
		remote string
		want   int
	}{
		{"203.0.113.99:5000", 429}, // a new address: the overflow is spent
		{"198.51.100.1:5000", 200}, // an address with its own budget left
		{"127.0.0.1:5000", 200},    // the developer's own
	} {
		if w := serveFrom(h, tt.remote, "GET", TokenPath, basic("towerreg", "s3cret")); w.Code != tt.want {
			t.Errorf("%s: %d, want %d", tt.remote, w.Code, tt.want)
		}
	}
	// Once every budget has refilled, a sweep makes room for new ones.
	c.t = c.t.Add(wrongLoginBurst * wrongLoginRefill)
	if w := serveFrom(h, "203.0.113.100:5000", "GET", TokenPath, basic("towerreg", "s3cret")); w.Code != 200 {
		t.Errorf("a new address after the budgets refilled: %d, want 200", w.Code)
	}
	if n := len(h.wrong.byClient); n > 1 {
		t.Errorf("%d budgets kept after the sweep, want the new one only", n)
	}
}
