package daemon

import (
	"fmt"
	"net/http"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/tunnel/tunneltest"
)

// loginAs asks the public token endpoint at base for a login token, with
// X-Forwarded-For set to xff if it is not empty, and returns the status.
func loginAs(t *testing.T, base, pass, xff string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/auth/token", nil)
	req.SetBasicAuth("towerreg", pass)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestForwardedOnTunnelOnly: the tunnel's server takes the client from
// X-Forwarded-For (all its connections are the agent's), so one forwarded
// client that spends its wrong logins leaves another able to log in, and
// leaves the developer on --public-listen alone. On --public-listen the
// header is the client's own word and is ignored: there the budget is
// the TCP peer's, whatever address the header names.
func TestForwardedOnTunnelOnly(t *testing.T) {
	fake := tunneltest.New()
	bus := event.NewBus(nil)
	sub := bus.Subscribe(256)
	t.Cleanup(sub.Close)
	cfg := config.Default()
	cfg.Public.Password = "s3cret"
	d, err := New(t.Context(), Options{Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(),
		Layer: fstest.MapFS{"f": {Data: []byte("x")}}, Bus: bus, Tunnel: fake})
	if err != nil {
		t.Fatal(err)
	}
	_, pubAddr := serveTwo(t, d)
	if err := fake.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	for nextTunnel(t, sub, 10*time.Second).State != event.TunnelUp {
	}
	tun, public := "http://"+fake.Addr(), "http://"+pubAddr

	for i := range 10 {
		if code := loginAs(t, tun, fmt.Sprint("guess", i), "203.0.113.1"); code != http.StatusUnauthorized {
			t.Fatalf("wrong login %d through the tunnel: %d, want 401", i, code)
		}
	}
	for _, tt := range []struct {
		name, base, xff string
		want            int
	}{
		{"tunnel: the client that guessed", tun, "203.0.113.1", http.StatusTooManyRequests},
		{"tunnel: another client", tun, "203.0.113.2", http.StatusOK},
		{"public-listen: the developer", public, "", http.StatusOK},
	} {
		if code := loginAs(t, tt.base, "s3cret", tt.xff); code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, code, tt.want)
		}
	}

	for i := range 10 {
		if code := loginAs(t, public, fmt.Sprint("guess", i), "203.0.113.3"); code != http.StatusUnauthorized {
			t.Fatalf("wrong login %d on --public-listen: %d, want 401", i, code)
		}
	}
	if code := loginAs(t, public, "s3cret", "203.0.113.4"); code != http.StatusTooManyRequests {
		t.Errorf("public-listen: the peer that guessed, naming another address in X-Forwarded-For: %d, want 429", code)
	}
}
