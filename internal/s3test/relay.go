package s3test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"golang.org/x/time/rate"
)

// Throttled stands for real S3 in front of a loopback server: a TCP relay
// that holds each connection, each way, to a rate, as S3 does (50-100
// MiB/s a connection) where loopback does not. Clients that want more
// must open more connections.
type Throttled struct {
	// URL is http://127.0.0.1:PORT, for AWS_ENDPOINT_URL.
	URL  string
	Host string

	ln     net.Listener
	target string
	rate   rate.Limit
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	open, peak int
}

// PeakConns is the most connections the relay has served at once, each
// counted from its dial to the server until the server's side ended (the
// test server closes a connection after each answer): a client's
// connection that lingers after its last byte does not count.
func (t *Throttled) PeakConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peak
}

// relayBurst is what a connection may send at once; a chunk of a copy
// is never larger.
const relayBurst = 64 << 10

// Throttle starts a relay to s that holds every connection to
// bytesPerSecond in each direction; it stops with tb.
func (s *Server) Throttle(tb testing.TB, bytesPerSecond int) *Throttled {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("relay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Throttled{URL: "http://" + ln.Addr().String(), Host: ln.Addr().String(), ln: ln, target: s.Host,
		rate: rate.Limit(bytesPerSecond), ctx: ctx, cancel: cancel}
	t.wg.Go(t.accept)
	tb.Cleanup(func() {
		cancel()
		ln.Close()
		t.wg.Wait()
	})
	return t
}

// Client returns a client with the root account that reaches the server
// through the relay.
func (t *Throttled) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := newClient(t.Host)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (t *Throttled) accept() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.wg.Go(func() { t.relay(c) })
	}
}

func (t *Throttled) relay(client net.Conn) {
	defer client.Close()
	var d net.Dialer
	server, err := d.DialContext(t.ctx, "tcp", t.target)
	if err != nil {
		return
	}
	defer server.Close()
	stop := context.AfterFunc(t.ctx, func() { client.Close(); server.Close() })
	defer stop()
	t.mu.Lock()
	t.open++
	t.peak = max(t.peak, t.open)
	t.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { t.copy(server, client) })
	t.copy(client, server)
	t.mu.Lock()
	t.open--
	t.mu.Unlock()
	wg.Wait()
}

// copy relays one direction at the rate, then half-closes it, so HTTP
// sees the end of a body as it would from S3.
func (t *Throttled) copy(dst, src net.Conn) {
	lim := rate.NewLimiter(t.rate, relayBurst)
	buf := make([]byte, relayBurst)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if lim.WaitN(t.ctx, n) != nil {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
