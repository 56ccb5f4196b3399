// Package faults puts a misbehaving network in front of a registry, for
// tests: latency, connection resets, server errors, rate limiting, blobs cut
// short or with bytes that do not match their digest, answers that never
// come, and manifests too large to accept.
//
// An Injector is an http.Handler that wraps the real upstream (an
// in-process go-containerregistry registry in the tests). It applies one
// Rule at a time to the requests the rule matches, a given number of times
// or until it is cleared, and counts every request by kind, so a test can
// tell how often the proxy went upstream.
package faults

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is what goes wrong.
type Kind int

const (
	// None passes requests through.
	None Kind = iota
	// Latency delays the answer by Rule.Delay, then serves it.
	Latency
	// Reset closes the connection with a TCP RST before any answer.
	Reset
	// Status answers Rule.Code (a 5xx) with an OCI error body.
	Status
	// TooMany answers 429 TOOMANYREQUESTS with Retry-After: Rule.RetryAfter.
	TooMany
	// Truncate sends the status, the full Content-Length and half the body,
	// then cuts the connection.
	Truncate
	// Corrupt serves the body with one byte changed: the same length and
	// headers, bytes that do not hash to the digest asked for.
	Corrupt
	// Hang sends nothing until the client goes away or the injector is
	// closed.
	Hang
	// Stall sends the status, the headers and half the body, then nothing
	// more until the client goes away or the injector is closed.
	Stall
	// Oversize answers a manifest request with a valid-looking manifest
	// of Rule.Size bytes.
	Oversize
)

var kindNames = [...]string{"none", "latency", "reset", "status", "too-many", "truncate", "corrupt", "hang", "stall", "oversize"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Target selects the requests a rule applies to.
type Target int

const (
	// Any request, the /v2/ ping and token requests included.
	Any Target = iota
	// Manifests: /v2/<name>/manifests/<ref>, GET and HEAD.
	Manifests
	// ManifestGets: GET of /v2/<name>/manifests/<ref> only.
	ManifestGets
	// Blobs: GET of /v2/<name>/blobs/<digest>.
	Blobs
)

// Rule is one fault.
type Rule struct {
	Kind   Kind
	Target Target
	// Times is how many matching requests get the fault; zero means every
	// one until Clear.
	Times int
	// Delay is Latency's delay.
	Delay time.Duration
	// Code is Status's status code; zero means 503.
	Code int
	// RetryAfter is what TooMany announces; zero means 1 s.
	RetryAfter time.Duration
	// Size is Oversize's manifest size; zero means 5 MiB, over the 4 MiB
	// limit of the OCI distribution spec.
	Size int
}

// Injector applies a Rule in front of an upstream handler.
type Injector struct {
	next http.Handler

	mu     sync.Mutex
	rule   Rule
	left   int // faults left when rule.Times > 0
	counts map[string]int
	hits   int

	closed chan struct{}
	once   sync.Once
}

// New returns an injector in front of next, passing everything through
// until Set.
func New(next http.Handler) *Injector {
	return &Injector{next: next, counts: map[string]int{}, closed: make(chan struct{})}
}

// Set makes r the fault, replacing any other, and resets its hit count.
func (i *Injector) Set(r Rule) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.rule, i.left, i.hits = r, r.Times, 0
}

// Clear removes the fault.
func (i *Injector) Clear() { i.Set(Rule{}) }

// Hits is how many requests got the current fault.
func (i *Injector) Hits() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.hits
}

// Count is how many requests of a kind reached the injector: kinds are
// "HEAD manifest", "GET manifest", "GET blob", "HEAD blob" and "other".
func (i *Injector) Count(kind string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.counts[kind]
}

// Close releases every request held by Hang or Stall, and any later one:
// a test server can then shut down.
func (i *Injector) Close() { i.once.Do(func() { close(i.closed) }) }

func kindOf(r *http.Request) string {
	switch {
	case strings.Contains(r.URL.Path, "/manifests/"):
		return r.Method + " manifest"
	case strings.Contains(r.URL.Path, "/blobs/"):
		return r.Method + " blob"
	}
	return "other"
}

func (t Target) matches(r *http.Request) bool {
	switch t {
	case Manifests:
		return strings.Contains(r.URL.Path, "/manifests/")
	case ManifestGets:
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
	case Blobs:
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
	}
	return true
}

// take decides whether r gets the fault, and counts it.
func (i *Injector) take(r *http.Request) Rule {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.counts[kindOf(r)]++
	rule := i.rule
	if rule.Kind == None || !rule.Target.matches(r) {
		return Rule{}
	}
	if rule.Times > 0 {
		if i.left == 0 {
			return Rule{}
		}
		i.left--
	}
	i.hits++
	return rule
}

// ServeHTTP implements http.Handler.
func (i *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule := i.take(r)
	switch rule.Kind {
	case None:
		i.next.ServeHTTP(w, r)
	case Latency:
		if !i.wait(r.Context(), rule.Delay) {
			return
		}
		i.next.ServeHTTP(w, r)
	case Reset:
		reset(w)
	case Status:
		code := rule.Code
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		ociError(w, code, "UNAVAILABLE", "injected fault: status "+strconv.Itoa(code))
	case TooMany:
		ra := rule.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		ociError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "injected fault: slow down")
	case Hang:
		i.wait(r.Context(), -1)
	case Truncate, Corrupt, Stall:
		i.mangle(w, r, rule.Kind)
	case Oversize:
		size := rule.Size
		if size <= 0 {
			size = 5 << 20
		}
		oversize(w, r, size)
	}
}

// wait sleeps for d (forever when negative) or until the request or the
// injector ends; it reports whether the whole delay passed.
func (i *Injector) wait(ctx context.Context, d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-ctx.Done():
	case <-i.closed:
	}
	return false
}

// mangle serves the real answer, then breaks its body.
func (i *Injector) mangle(w http.ResponseWriter, r *http.Request, k Kind) {
	rec := httptest.NewRecorder()
	i.next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	for key, v := range rec.Header() {
		w.Header()[key] = v
	}
	if rec.Code != http.StatusOK || len(body) == 0 {
		w.WriteHeader(rec.Code)
		w.Write(body)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	switch k {
	case Corrupt:
		bad := bytes.Clone(body)
		bad[len(bad)/2] ^= 0xff
		w.Write(bad)
		return
	case Truncate:
		w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
		// The Content-Length promised more: cutting the connection is how
		// a server that died mid-stream looks to the client.
		panic(http.ErrAbortHandler)
	case Stall:
		w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
		i.wait(r.Context(), -1)
		panic(http.ErrAbortHandler)
	}
}

// reset closes the connection so that the client sees a reset, not a
// clean close: SO_LINGER 0 makes the kernel send RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

func ociError(w http.ResponseWriter, code int, errCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, errCode, msg)
}

// oversize answers with an image manifest padded by an annotation to size
// bytes: well-formed JSON a client could parse, only too large.
func oversize(w http.ResponseWriter, r *http.Request, size int) {
	const head = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[],"annotations":{"pad":"`
	const tail = `"}}`
	pad := max(size-len(head)-len(tail), 0)
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(head)+pad+len(tail)))
	if r.Method == http.MethodHead {
		// A HEAD says what the GET would send; the digest it would need is
		// not worth computing for a manifest that must be refused anyway.
		return
	}
	w.Write([]byte(head))
	w.Write(bytes.Repeat([]byte("x"), pad))
	w.Write([]byte(tail))
}
