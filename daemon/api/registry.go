package api

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/event"
)

// Registry serves the OCI distribution read API through the rewriting
// proxy.
type Registry struct {
	tokens          Tokens
	closures        closureCache // what each token image holds, for token routes
	blobs           BlobSource
	rw              ManifestSource
	tagSource       TagSource
	defaultRegistry string
	bus             *event.Bus
	log             *slog.Logger
	stall           time.Duration // see RegistryClientStall
	sizes           *blobSizes    // of the blobs the manifests served name
}

// NewRegistry returns the registry handler: manifests from rw, blobs from
// blobs (the audience's, with its blob mode), tag lists from tags.
// defaultRegistry is where names without a host live (docker.io unless
// configured).
func NewRegistry(rw ManifestSource, blobs BlobSource, tags TagSource, defaultRegistry string, bus *event.Bus, log *slog.Logger, opts ...RegistryOption) *Registry {
	h := &Registry{rw: rw, blobs: blobs, tagSource: tags,
		defaultRegistry: defaultRegistry, bus: bus, log: log, sizes: newBlobSizes()}
	for _, o := range opts {
		o(h)
	}
	return h
}

// RegistryOption is an optional part of a registry handler.
type RegistryOption func(*Registry)

// RegistryClientStall cuts a blob's client that takes nothing for d: the
// bound that upstream.stall_timeout sets on the upstream side, on the
// client's. Zero means no bound.
func RegistryClientStall(d time.Duration) RegistryOption { return func(h *Registry) { h.stall = d } }

// RegistryTokens has the registry serve container token routes (/v2/wt/...)
// through t; without it they answer NAME_UNKNOWN.
func RegistryTokens(t Tokens) RegistryOption { return func(h *Registry) { h.tokens = t } }

// Wait waits until the blob requests in flight are answered and the blobs
// being kept in the cache are committed: a daemon that stops, or a test
// that removes the store, waits for them.
func (h *Registry) Wait() { h.blobs.Wait() }

// IsRegistryPath reports whether a path belongs to the registry API.
func IsRegistryPath(p string) bool {
	return p == "/v2" || strings.HasPrefix(p, "/v2/")
}

// ServeHTTP implements http.Handler.
func (h *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	x := &exchange{w: &statusWriter{ResponseWriter: w}, r: r, rt: parseRoute(r.URL.Path)}
	h.finish(x, h.route(x))
}

// exchange is one registry request as its route serves it.
type exchange struct {
	w  *statusWriter
	r  *http.Request
	rt route
	// done, which the routes that publish an event set (manifests,
	// blobs), completes and publishes it once the answer is out: status
	// is the error's, when the route failed before its headers.
	done func(status int, err error)
}

// finish is the one place where a registry route's error becomes its
// answer: the OCI error, unless the headers are out already; then the
// route's event; then, for a body that cannot be finished, a cut.
func (h *Registry) finish(x *exchange, err error) {
	started := x.w.status != 0 // headers out before the error
	status := x.w.status
	if err != nil && !started {
		status = writeError(x.w, x.r, h.log, x.rt.kind, err)
	}
	if x.done != nil {
		x.done(status, err)
	}
	if err != nil && started {
		// The headers, with a Content-Length, are out: the only honest way
		// to tell the client the body is bad is to cut the connection, so a
		// short body is never taken for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// route serves the request x by its route, and returns its error.
func (h *Registry) route(x *exchange) error {
	w, r, rt := x.w, x.r, x.rt
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Pushes, deletes and uploads never reach an upstream: this is a
		// read-only proxy.
		return newError(http.StatusMethodNotAllowed, codeUnsupported,
			"tower-reg is a read-only proxy: "+r.Method+" is not supported")
	}
	if tokenRoute(rt) {
		return h.tokenRoute(x)
	}
	switch rt.kind {
	case kindBase:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return nil
	case kindManifest:
		return h.manifest(x, "", func() (servedManifest, error) { return h.resolveManifest(r, rt) })
	case kindBlob:
		return h.blob(x, "", func(v1.Hash) error { return nil })
	case kindTags:
		return h.tags(w, r, rt)
	case kindReferrers:
		return h.referrers(w, r, rt, nil)
	}
	return newError(http.StatusNotFound, codeUnsupported, "no such registry route: "+r.URL.Path)
}

// statusWriter remembers the status and counts the body bytes, for events.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// ReadFrom passes a blob's file on to the writer below, down to the TCP
// connection, which sends it with sendfile: through Write, every byte
// would be copied into the daemon and out again.
func (s *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := io.Copy(s.ResponseWriter, src)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Microsecond) }
