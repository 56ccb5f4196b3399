package peer

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// get sends one request on c and returns the status, or the error of a
// connection the server closed.
func get(c net.Conn) (int, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(c, "GET /v2/ HTTP/1.1\r\nHost: reg\r\n\r\n"); err != nil {
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

func dialFrom(t *testing.T, from, to string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLimitConns: a client holds at most the bound of connections at
// once; one more is closed unanswered, while another address still gets
// in, and the client gets a place back once it closes one.
func TestLimitConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Listener.Close()
	srv.Listener = LimitConns(ln, 2, slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	addr := ln.Addr().String()

	held := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	for i, c := range held {
		if code, err := get(c); code != 200 {
			t.Fatalf("connection %d within the bound: %d, %v", i, code, err)
		}
	}
	if code, err := get(dialFrom(t, "127.0.0.1", addr)); err == nil {
		t.Fatalf("a connection over the bound was served: %d", code)
	}
	if code, err := get(dialFrom(t, "127.0.0.2", addr)); code != 200 {
		t.Fatalf("another address was refused: %d, %v", code, err)
	}
	// Still served: the refusal cost the client's open connections nothing.
	if code, err := get(held[0]); code != 200 {
		t.Fatalf("a held connection after the refusal: %d, %v", code, err)
	}
	held[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, err := get(dialFrom(t, "127.0.0.1", addr))
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place back after a close: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLimitRequests: behind the tunnel a client (by its forwarded address)
// has at most the bound of requests in flight; one more is a 429 with
// Retry-After, while another client is served.
func TestLimitRequests(t *testing.T) {
	release := make(chan struct{})
	inside := make(chan struct{}, 4)
	h := Forwarded(LimitRequests(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "" {
			inside <- struct{}{}
			<-release
		}
	})))
	serve := func(client, target string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", target, nil)
		r.RemoteAddr = "127.0.0.1:4000" // the tunnel agent, for every client
		r.Header.Set("X-Forwarded-For", client)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- serve("203.0.113.1", "/v2/?wait=1").Code }()
		<-inside
	}
	if w := serve("203.0.113.1", "/v2/"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("a request over the bound: %d %s, want 429 with Retry-After", w.Code, w.Body)
	}
	if w := serve("203.0.113.2", "/v2/"); w.Code != 200 {
		t.Errorf("another client: %d, want 200", w.Code)
	}
	close(release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("a request within the bound: %d", code)
		}
	}
	if w := serve("203.0.113.1", "/v2/"); w.Code != 200 {
		t.Errorf("after the others ended: %d, want 200", w.Code)
	}
}
