package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// blob answers a blob request; allow refuses digests the route may not
// serve (a container token's route serves its image's blobs only), and tok
// is the short form of that token, if any.
func (h *Registry) blob(w http.ResponseWriter, r *http.Request, rt route, tok string, allow func(v1.Hash) error) {
	start := time.Now()
	// Counted from the start, so that a Wait after the client has its
	// bytes also waits for the commit this handler is about to begin.
	h.keeping.Add(1)
	defer h.keeping.Done()
	if h.stall > 0 {
		st := stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: h.stall}
		// The server sets no write deadline of its own: leave none behind
		// for the next request on this connection.
		defer st.rc.SetWriteDeadline(time.Time{})
		w = st
	}
	sw := &statusWriter{ResponseWriter: w}
	red := token.PathRedactor(r.URL.Path)
	ev := event.BlobServed{Client: r.RemoteAddr, Method: r.Method, Repo: red.Replace(rt.name), Digest: red.Replace(rt.ref), Token: tok}
	err := h.serveBlob(sw, r, rt, allow, red, &ev)
	started := sw.status != 0 // headers out before the error
	if err != nil {
		ev.Err = red.Replace(err.Error())
		if !started {
			writeError(sw, r, h.log, rt.kind, err)
		}
	}
	ev.Status, ev.Bytes = sw.status, sw.bytes
	ev.Time, ev.Duration = h.bus.Now(), since(start)
	h.bus.Publish(ev)
	if err != nil && started {
		// The headers, with a Content-Length, are out: the only honest way
		// to tell the client the body is bad is to cut the connection, so a
		// short body is never taken for a whole one.
		panic(http.ErrAbortHandler)
	}
}

func (h *Registry) serveBlob(w *statusWriter, r *http.Request, rt route, allow func(v1.Hash) error, red *strings.Replacer, ev *event.BlobServed) error {
	repo, err := rt.repo(h.defaultRegistry)
	if err != nil {
		return err
	}
	// A name that resolved may still carry a token, as a path component.
	ev.Repo = red.Replace(repo.String())
	d, err := proxy.ParseDigest(rt.ref)
	if err != nil {
		return err
	}
	if err := allow(d); err != nil {
		return err
	}
	if h.serveStored(w, r, repo, d, ev) {
		return nil
	}
	if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
		// An upstream's partial answer cannot be checked against the
		// digest, and passed on unchecked it would be whatever the far
		// side sent. The range is cut from the whole blob, verified and
		// kept in the store first.
		ev.Source = "upstream"
		if err := h.fetchWhole(r.Context(), repo, d); err != nil {
			return err
		}
		if h.serveStored(w, r, repo, d, ev) {
			ev.Source = "upstream"
			return nil
		}
		// Nowhere to keep it: the whole blob, which a server may send
		// for a Range request (RFC 9110, 14.2).
	}
	ev.Source = "upstream"
	resp, err := h.up.Blob(r.Context(), repo, d, r.Method)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	hd := w.Header()
	for _, k := range []string{"Content-Length", "Accept-Ranges", "Etag", "Last-Modified"} {
		if v := resp.Header.Get(k); v != "" {
			hd.Set(k, v)
		}
	}
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Docker-Content-Digest", d.String())
	if r.Method == http.MethodHead {
		w.WriteHeader(resp.StatusCode)
	}
	// A whole blob's 200 goes out with its first bytes: until then a
	// failure (a blob cut short, or not matching its digest, that fits in
	// the chunk held back) is still an OCI error, not a cut connection.
	if r.Method == http.MethodGet {
		h.bus.Publish(event.BlobStarted{Meta: event.Meta{Time: h.bus.Now()}, Client: r.RemoteAddr,
			Repo: ev.Repo, Digest: d.String(), Source: ev.Source, Size: resp.ContentLength, Token: ev.Token})
	}
	if r.Method == http.MethodHead {
		return nil
	}
	return h.streamAndCache(w, r, repo, resp, d)
}

// serveStored answers from the store, if it holds d for repo: ranges and
// HEAD too, from the file itself.
func (h *Registry) serveStored(w *statusWriter, r *http.Request, repo proxy.Repo, d v1.Hash, ev *event.BlobServed) bool {
	if !h.rw.Linked(repo, d) {
		return false
	}
	f, err := h.rw.OpenBlob(d)
	if err != nil {
		return false
	}
	defer f.Close()
	ev.Source = "store"
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Etag", `"`+d.String()+`"`)
	if r.Method == http.MethodGet {
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		h.bus.Publish(event.BlobStarted{Meta: event.Meta{Time: h.bus.Now()}, Client: r.RemoteAddr,
			Repo: ev.Repo, Digest: d.String(), Source: ev.Source, Size: size, Token: ev.Token})
	}
	http.ServeContent(blobHeaders{w, d}, r, "", time.Time{}, f)
	return true
}

// fetchWhole puts the whole upstream blob d of repo in the store, checked
// against its digest. A store that cannot take it is no error: the caller
// then streams.
func (h *Registry) fetchWhole(ctx context.Context, repo proxy.Repo, d v1.Hash) error {
	cache := h.rw.CacheBlob(ctx, repo)
	if cache == nil {
		return nil
	}
	resp, err := h.up.Blob(ctx, repo, d, http.MethodGet)
	if err != nil {
		cache.Discard()
		return err
	}
	defer resp.Body.Close()
	if err := copyVerified(io.Discard, resp.Body, d, cache); err != nil {
		cache.Discard()
		return err
	}
	return cache.Keep(context.WithoutCancel(ctx), d)
}

// streamAndCache streams a whole upstream blob to the client, checked
// against its digest, and keeps a copy in the store for the next pull. The
// copy is written by the goroutine that hashes, a chunk behind the client,
// and committed once the client has all of it.
func (h *Registry) streamAndCache(w io.Writer, r *http.Request, repo proxy.Repo, resp *http.Response, d v1.Hash) error {
	cache := h.rw.CacheBlob(r.Context(), repo)
	if cache == nil {
		return copyVerified(w, resp.Body, d, nil)
	}
	if err := copyVerified(w, resp.Body, d, cache); err != nil {
		cache.Discard()
		return err
	}
	// The fsync of a big blob must not hold the client's answer: commit
	// after this handler returns, on a context that outlives the request.
	ctx := context.WithoutCancel(r.Context())
	h.keeping.Add(1)
	go func() {
		defer h.keeping.Done()
		if err := cache.Keep(ctx, d); err != nil {
			h.log.Warn("keep an upstream blob in the cache", "repo", repo.String(), "digest", d.String(), "error", err)
		}
	}()
	return nil
}

// blobHeaders adds Docker-Content-Digest to successful answers only: an
// error that ServeContent writes, such as a 416, is not the blob.
type blobHeaders struct {
	http.ResponseWriter
	digest v1.Hash
}

func (b blobHeaders) WriteHeader(code int) {
	if code < http.StatusBadRequest {
		b.Header().Set("Docker-Content-Digest", b.digest.String())
	}
	b.ResponseWriter.WriteHeader(code)
}

// errBlobMismatch is a whole upstream blob whose bytes do not match its
// digest.
var errBlobMismatch = fmt.Errorf("blob: %w", proxy.ErrDigestMismatch)

// copyVerified streams src to dst while hashing it, and holds the last chunk
// back until the hash is known: a blob that does not match its digest never
// reaches the client whole.
//
// Hashing runs in its own goroutine, a chunk behind the network: on a small
// machine the proxy, the upstream and the client share the cores, and a
// hash in line with the copy would stall reading and writing alike. Memory
// is a fixed set of chunks whatever the blob's size.
//
// tee, when not nil, gets every byte too, in order, from the hashing
// goroutine: it must not hold on to the slices it is given.
func copyVerified(dst io.Writer, src io.Reader, want v1.Hash, tee io.Writer) error {
	const chunkSize, chunks = 512 << 10, 4
	free := make(chan []byte, chunks)
	for range chunks {
		free <- make([]byte, chunkSize)
	}
	toHash, hashed := make(chan []byte, chunks), make(chan []byte, chunks)
	h := sha256.New()
	go func() {
		defer close(hashed)
		for c := range toHash {
			h.Write(c)
			if tee != nil {
				tee.Write(c)
			}
			hashed <- c
		}
	}()
	// finish stops the hasher and waits for it, so h is safe to read and
	// no goroutine outlives the request.
	finish := func() {
		close(toHash)
		for range hashed {
		}
	}

	var held []byte // read and sent to the hasher, not yet written
	for {
		buf := <-free
		n, err := fill(src, buf)
		if n > 0 {
			toHash <- buf[:n]
			// Only now that a later chunk exists may the held one go out:
			// the last chunk waits for the digest.
			if held != nil {
				if _, werr := dst.Write(held); werr != nil {
					finish()
					return werr
				}
				free <- (<-hashed)[:chunkSize] // the hasher is done with held
			}
			held = buf[:n]
		} else {
			free <- buf
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			finish()
			return fmt.Errorf("%w: reading upstream blob %s: %w", proxy.ErrUnavailable, want, err)
		}
	}
	finish()
	if got := hex.EncodeToString(h.Sum(nil)); want.Algorithm != "sha256" || got != want.Hex {
		return fmt.Errorf("%w: %s hashes to sha256:%s", errBlobMismatch, want, got)
	}
	_, err := dst.Write(held)
	return err
}

// fill reads into buf until it is full or src ends. It returns io.EOF only
// for the normal end of src, never for a truncated body, whose error it
// passes on as it is.
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stallWriter cuts a client that stops reading a blob: each write must be
// taken within stall. Without it, a client that connects and never reads
// would hold a goroutine, its chunks and an upstream connection for as
// long as it stays connected.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (s stallWriter) Write(p []byte) (int, error) {
	// A writer that cannot take deadlines (a test's recorder) just writes.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
