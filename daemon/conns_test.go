package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tower-reg/tower-reg/daemon/config"
)

// serveConns runs a daemon built from cfg on a local and a public
// loopback listener, and returns their addresses.
func serveConns(t *testing.T, cfg config.Config, idle time.Duration) (local, public string) {
	t.Helper()
	d, err := New(t.Context(), Options{Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(),
		Layer: fstest.MapFS{"f": {Data: []byte("x")}}, IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	return serveTwo(t, d)
}

// serveTwo serves d on a local and a public loopback listener until the
// test ends, and returns their addresses.
func serveTwo(t *testing.T, d *Daemon) (local, public string) {
	t.Helper()
	var lns []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, lns[0], lns[1]) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lns[0].Addr().String(), lns[1].Addr().String()
}

// ping sends GET /v2/ on c, keeping it alive, and returns the status.
func ping(c net.Conn) (int, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: %s\r\n\r\n", c.RemoteAddr()); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestIdleTimeout: a keep-alive connection that sends nothing after its
// request is closed by the daemon once the idle bound has passed, on the
// local and the public listener alike.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	local, public := serveConns(t, config.Default(), idle)
	for name, addr := range map[string]string{"local": local, "public": public} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			if code, err := ping(c); err != nil || code == 0 {
				t.Fatalf("first request: %d, %v", code, err)
			}
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(idle + 3*time.Second))
			_, err := c.Read(make([]byte, 1))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("an idle connection after %v: %v, want it closed (EOF)", time.Since(start), err)
			}
			if took := time.Since(start); took < idle/2 {
				t.Errorf("closed after %v, before the idle bound %v", took, idle)
			}
		})
	}
}

// TestPublicConnsPerClient: through Serve, a client of --public-listen
// holds at most limits.public_conns_per_client connections; one more is
// closed unanswered, and the local listener has no such bound.
func TestPublicConnsPerClient(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.PublicConnsPerClient = 2
	local, public := serveConns(t, cfg, 0)
	for i := range 2 {
		if code, err := ping(dial(t, public)); code != http.StatusUnauthorized {
			t.Fatalf("public connection %d within the bound: %d, %v", i, code, err)
		}
	}
	if code, err := ping(dial(t, public)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a public connection over the bound: %d, %v; want it closed", code, err)
	}
	for i := range 3 {
		if code, err := ping(dial(t, local)); code != http.StatusOK {
			t.Fatalf("local connection %d: %d, %v", i, code, err)
		}
	}
}
