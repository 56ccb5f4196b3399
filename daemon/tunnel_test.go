package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/tunnel"
	"github.com/tower-reg/tower-reg/tunnel/tunneltest"
)

// The providers fit the interface the daemon declares, though package
// tunnel imports nothing of the daemon.
var (
	_ Tunnel = (*tunnel.Ngrok)(nil)
	_ Tunnel = (*tunneltest.Fake)(nil)
)

// TestTunnelStateNames: the daemon passes a tunnel's states into its events
// unchanged, so both packages must spell them alike.
func TestTunnelStateNames(t *testing.T) {
	for _, tt := range []struct{ tunnel, event string }{
		{tunnel.Connecting, event.TunnelConnecting},
		{tunnel.Up, event.TunnelUp},
		{tunnel.Reconnecting, event.TunnelReconnecting},
		{tunnel.Down, event.TunnelDown},
	} {
		if tt.tunnel != tt.event {
			t.Errorf("tunnel state %q, event state %q", tt.tunnel, tt.event)
		}
	}
}

// tunnelDaemon serves a daemon with the tunnel t on a loopback listener.
// It returns the daemon, its local address, its event subscription, a
// stop function, and the channel Serve's result arrives on.
func tunnelDaemon(t *testing.T, tun Tunnel) (*Daemon, string, *event.Subscription, context.CancelFunc, chan error) {
	t.Helper()
	bus := event.NewBus(nil)
	sub := bus.Subscribe(256)
	t.Cleanup(sub.Close)
	d, err := New(t.Context(), Options{
		Config:   config.Default(),
		CacheDir: t.TempDir(),
		Layer:    fstest.MapFS{"f": {Data: []byte("x")}},
		Bus:      bus,
		Tunnel:   tun,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, served := serveLoopback(t, d)
	t.Cleanup(func() {
		stop()
		select {
		case <-served:
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after a stop")
		}
	})
	return d, addr, sub, stop, served
}

// serveLoopback serves d on a loopback listener until stop; Serve's
// result arrives on served.
func serveLoopback(t *testing.T, d *Daemon) (addr string, stop context.CancelFunc, served chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served = make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	return ln.Addr().String(), stop, served
}

// nextTunnel waits for the next TunnelStatus event.
func nextTunnel(t *testing.T, sub *event.Subscription, within time.Duration) event.TunnelStatus {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e := <-sub.C():
			if s, ok := e.(event.TunnelStatus); ok {
				return s
			}
		case <-deadline:
			t.Fatalf("no tunnel event within %v", within)
		}
	}
}

func getStatus(t *testing.T, addr string) admin.Status {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/_towerreg/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, url string) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestTunnelStates drives a fake tunnel through connecting, up,
// reconnecting, up again and down: each state is one event, the status
// and the container tokens' host follow it, and the public handler (not
// the local one) serves the tunnel's connections.
func TestTunnelStates(t *testing.T) {
	fake := tunneltest.New()
	d, local, sub, stop, served := tunnelDaemon(t, fake)
	ctx := t.Context()
	var states []string
	expect := func(state, errPart string) event.TunnelStatus {
		t.Helper()
		s := nextTunnel(t, sub, 5*time.Second)
		states = append(states, s.State)
		if s.State != state || !strings.Contains(s.Err, errPart) || s.Provider != "fake" || s.When().IsZero() {
			t.Fatalf("tunnel event %+v, want state %s, error with %q", s, state, errPart)
		}
		return s
	}

	expect(event.TunnelConnecting, "")
	if h := d.tokenHost(); h != local {
		t.Errorf("token host while connecting = %q, want the local address %s", h, local)
	}

	fake.Up(ctx)
	up := expect(event.TunnelUp, "")
	if up.URL != "http://"+fake.Addr() {
		t.Errorf("up URL %q, want http://%s", up.URL, fake.Addr())
	}
	if h := d.tokenHost(); h != fake.Addr() {
		t.Errorf("token host while up = %q, want the public host %s", h, fake.Addr())
	}
	if st := getStatus(t, local).Tunnel; st.Provider != "fake" || st.State != event.TunnelUp || st.URL != up.URL {
		t.Errorf("status tunnel = %+v", st)
	}
	// The tunnel serves the public handler: a challenge for /v2/, no
	// admin routes.
	if code, h := get(t, up.URL+"/v2/"); code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("GET /v2/ through the tunnel: %d %q, want 401 with a Bearer challenge", code, h.Get("WWW-Authenticate"))
	}
	for _, p := range []string{"/_towerreg/status", "/metrics"} {
		if code, _ := get(t, up.URL+p); code != http.StatusNotFound {
			t.Errorf("GET %s through the tunnel: %d, want 404", p, code)
		}
	}

	fake.Drop(ctx, "connection reset by ngrok")
	expect(event.TunnelReconnecting, "connection reset by ngrok")
	if st := getStatus(t, local).Tunnel; st.State != event.TunnelReconnecting || st.Error != "connection reset by ngrok" {
		t.Errorf("status tunnel while reconnecting = %+v", st)
	}
	if h := d.tokenHost(); h != local {
		t.Errorf("token host while reconnecting = %q, want the local address %s", h, local)
	}

	fake.Up(ctx)
	expect(event.TunnelUp, "")

	stop()
	expect(event.TunnelDown, "shutting down")
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	served <- nil // for the cleanup
	want := []string{"connecting", "up", "reconnecting", "up", "down"}
	if strings.Join(states, ",") != strings.Join(want, ",") {
		t.Errorf("states %v, want %v", states, want)
	}
	if _, err := http.Get(up.URL + "/v2/"); err == nil {
		t.Error("the tunnel listener still accepts after shutdown")
	}
}

// TestTunnelFailureKeepsServing: a tunnel that cannot connect says why,
// in plain words, within 10 s, and the local registry serves all along.
// The real ngrok agent runs with an invalid token on this machine, which
// cannot reach ngrok.
func TestTunnelFailureKeepsServing(t *testing.T) {
	tests := []struct {
		name   string
		tunnel func(t *testing.T) (Tunnel, func())
		reason []string // any of these in the reason
	}{
		{"fake: a permanent failure", func(t *testing.T) (Tunnel, func()) {
			f := tunneltest.New()
			return f, func() { f.Fail(t.Context(), "ngrok refused the domain reg.example.ngrok.app") }
		}, []string{"refused the domain"}},
		{"real ngrok agent: invalid token, no network", func(t *testing.T) (Tunnel, func()) {
			tun, err := tunnel.NewNgrok(tunnel.NgrokOptions{Authtoken: "invalid", Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			return tun, func() {}
		}, []string{"cannot reach ngrok", "auth token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun, fail := tt.tunnel(t)
			start := time.Now()
			d, local, sub, _, served := tunnelDaemon(t, tun)
			if s := nextTunnel(t, sub, 5*time.Second); s.State != event.TunnelConnecting {
				t.Fatalf("first tunnel event %+v, want connecting", s)
			}
			fail()
			s := nextTunnel(t, sub, 10*time.Second)
			took := time.Since(start)
			t.Logf("down after %v: %s", took.Round(time.Millisecond), s.Err)
			if s.State != event.TunnelDown {
				t.Fatalf("tunnel event %+v, want down", s)
			}
			plain := false
			for _, r := range tt.reason {
				plain = plain || strings.Contains(s.Err, r)
			}
			if !plain {
				t.Errorf("reason %q, want one of %q", s.Err, tt.reason)
			}
			if code, _ := get(t, "http://"+local+"/v2/"); code != http.StatusOK {
				t.Errorf("local GET /v2/ with the tunnel down: %d, want 200", code)
			}
			if st := getStatus(t, local).Tunnel; st.State != event.TunnelDown || st.Error != s.Err {
				t.Errorf("status tunnel = %+v, want down with the reason", st)
			}
			if h := d.tokenHost(); h != local {
				t.Errorf("token host with the tunnel down = %q, want %s", h, local)
			}
			select {
			case err := <-served:
				t.Fatalf("Serve returned while the tunnel was down: %v", err)
			case <-time.After(500 * time.Millisecond):
			}
			if code, _ := get(t, "http://"+local+"/v2/"); code != http.StatusOK {
				t.Errorf("local GET /v2/ later: %d, want 200", code)
			}
		})
	}
}
