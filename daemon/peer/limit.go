package peer

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// DefaultPerClient is the bound of LimitConns and LimitRequests when the
// config says nothing. A docker pull holds about four connections (the
// manifest, three layers at once); a few pulls at once from one machine,
// or from machines behind one NAT address, stay well under it, and one
// client still cannot hold more than a few dozen file descriptors.
const DefaultPerClient = 32

// counter counts what each client holds, up to limit each. It keeps only
// clients that hold something, so its size is bounded by what is held.
type counter struct {
	limit int
	mu    sync.Mutex
	n     map[string]int
}

func newCounter(limit int) *counter { return &counter{limit: limit, n: map[string]int{}} }

func (c *counter) acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.limit {
		return false
	}
	c.n[key]++
	return true
}

func (c *counter) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}

// LimitConns bounds the connections that one client (Client.Key of the
// TCP peer) holds open on ln at once to limit: one address cannot take all
// the daemon's connections and file descriptors. A connection over the
// bound is closed as soon as it is accepted; the client's others go on.
// A limit of 0 or less means no bound.
func LimitConns(ln net.Listener, limit int, log *slog.Logger) net.Listener {
	if limit <= 0 {
		return ln
	}
	return &connLimiter{Listener: ln, count: newCounter(limit), log: log}
}

type connLimiter struct {
	net.Listener
	count *counter
	log   *slog.Logger
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := Client{IP: parseIP(c.RemoteAddr().String())}.Key()
		if l.count.acquire(key) {
			return &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.count.release(key) })}, nil
		}
		l.log.Debug("connection refused: the client holds too many", "client", key, "limit", l.count.limit)
		c.Close()
	}
}

// limitedConn gives its place back when closed, once.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// ReadFrom keeps the TCP connection's own ReadFrom (sendfile, splice)
// for the blobs http.Server copies to it.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// LimitRequests bounds the requests that one client (Client.Key of Of)
// has in flight at once to limit; one over it is a 429. It is the bound of
// LimitConns for the tunnel, whose connections all come from its agent.
// A limit of 0 or less means no bound.
func LimitRequests(limit int, next http.Handler) http.Handler {
	if limit <= 0 {
		return next
	}
	count := newCounter(limit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := Of(r).Key()
		if !count.acquire(key) {
			tooMany(w, limit)
			return
		}
		defer count.release(key)
		next.ServeHTTP(w, r)
	})
}

// tooMany answers a request over the bound as a registry does: 429
// TOOMANYREQUESTS, to be tried again in a second.
func tooMany(w http.ResponseWriter, limit int) {
	msg := fmt.Sprintf("too many requests at once from your address: at most %d", limit)
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "TOOMANYREQUESTS", "message": msg}}})
}
