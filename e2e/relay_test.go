package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// A byte-counting TCP relay

// relayMaxConns bounds the connections a relay serves at once (two
// goroutines each); more wait in the listen backlog. Registry clients open
// a few per pull.
const relayMaxConns = 32

// relay is a TCP relay on 127.0.0.1 in front of a server (the daemon's
// public listener): it counts the bytes each way, and can hold the
// server-to-client direction to a rate, as a home uplink does. It closes
// with the test.
type relay struct {
	Addr   string // 127.0.0.1:PORT, what clients dial
	target string
	ln     net.Listener
	limit  *rateLimit // nil: no limit

	// up is what clients sent the server, down what the server sent them.
	up, down atomic.Int64
	conns    atomic.Int64 // connections accepted

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// startRelay relays 127.0.0.1:0 to target. bytesPerSecond > 0 limits the
// target-to-client direction, over all connections together.
func startRelay(tb testing.TB, target string, bytesPerSecond int64) *relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("relay: %v", err)
	}
	r := &relay{Addr: ln.Addr().String(), target: target, ln: ln, open: map[net.Conn]struct{}{}, done: make(chan struct{})}
	if bytesPerSecond > 0 {
		r.limit = &rateLimit{perSecond: float64(bytesPerSecond)}
	}
	r.wg.Add(1)
	go r.accept()
	tb.Cleanup(r.close)
	return r
}

// counts returns the bytes relayed: client to server, server to client.
// A client can have its last byte before the goroutine that wrote it has
// counted it, so counts first waits, up to 5 s, for the connections the
// clients closed to be done with.
func (r *relay) counts() (up, down int64) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && r.busy(); {
		time.Sleep(10 * time.Millisecond)
	}
	return r.up.Load(), r.down.Load()
}

// busy reports whether a connection is still being relayed.
func (r *relay) busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open) > 0
}

func (r *relay) accept() {
	defer r.wg.Done()
	slots := make(chan struct{}, relayMaxConns)
	for {
		select {
		case slots <- struct{}{}:
		case <-r.done:
			return
		}
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		r.conns.Add(1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-slots }()
			r.serve(c)
		}()
	}
}

// track adds c to the open connections, or closes it and says no when the
// relay is closing.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.open[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.open, c)
	r.mu.Unlock()
	c.Close()
}

func (r *relay) serve(client net.Conn) {
	if !r.track(client) {
		return
	}
	defer r.untrack(client)
	server, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil {
		return // the client sees the connection close
	}
	if !r.track(server) {
		return
	}
	defer r.untrack(server)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.pipe(server, client, &r.up, nil)
	}()
	r.pipe(client, server, &r.down, r.limit)
	wg.Wait()
}

// pipe copies src to dst, counting into n and waiting on limit, then
// half-closes dst so the far side sees the end of the stream (an HTTP
// server keeps answering on a connection whose client stopped writing).
func (r *relay) pipe(dst, src net.Conn, n *atomic.Int64, limit *rateLimit) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if limit != nil && !limit.wait(k, r.done) {
				break
			}
			w, werr := dst.Write(buf[:k])
			n.Add(int64(w))
			if werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// close stops accepting, cuts every open connection and waits for the
// relay's goroutines.
func (r *relay) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.done)
		r.ln.Close()
		for c := range r.open {
			c.Close()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// rateLimit spaces writes so that they average perSecond bytes, over every
// connection that shares it.
type rateLimit struct {
	perSecond float64
	mu        sync.Mutex
	next      time.Time // when the bytes granted so far have all gone
}

// wait blocks until n more bytes may go; false when done closed first.
func (l *rateLimit) wait(n int, done <-chan struct{}) bool {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.perSecond * float64(time.Second)))
	until := l.next
	l.mu.Unlock()
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// TestHarnessRelay checks the relay's counts against a known answer,
// its rate limit against the clock, and that it closes with connections
// still open.
func TestHarnessRelay(t *testing.T) {
	const size = 3 << 20
	body := strings.Repeat("x", size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size)) // not chunked: the count is exact
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	target := strings.TrimPrefix(srv.URL, "http://")

	get := func(r *relay) time.Duration {
		t.Helper()
		start := time.Now()
		// A fresh transport: no connection kept from an earlier relay.
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://" + r.Addr + "/blob")
		if err != nil {
			t.Fatalf("GET through the relay: %v", err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("GET through the relay: %d bytes, %v; want %d", n, err, size)
		}
		return time.Since(start)
	}

	r := startRelay(t, target, 0)
	get(r)
	up, down := r.counts()
	// The body, and a status line and headers of well under a KiB.
	if down < size || down > size+1024 {
		t.Errorf("relayed %d bytes down, want the %d-byte body and its headers", down, size)
	}
	if up < int64(len("GET /blob HTTP/1.1\r\n")) || up > 1024 {
		t.Errorf("relayed %d bytes up, want one small GET", up)
	}

	const rate = 12 << 20 // 3 MiB in about 250 ms
	slow := startRelay(t, target, rate)
	took := get(slow)
	if want := time.Duration(float64(size) / rate * float64(time.Second)); took < want*9/10 {
		t.Errorf("3 MiB at 12 MiB/s took %v, want at least %v", took, want*9/10)
	}

	// A connection left open does not hold up close.
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() { r.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay did not close with a connection open")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the relay left a client connection open after close (%v)", err)
	}
}
