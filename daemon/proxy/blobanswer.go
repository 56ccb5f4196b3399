package proxy

import (
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobAnswer is how Blobs answers one blob request: a redirect, a file of
// the store, or an upstream transfer to stream. Serve it, then Close it.
type BlobAnswer struct {
	// Source is SourceStore, SourceUpstream or SourceRedirect.
	Source string
	// Note says why a redirect was not passed on, when it was not.
	Note string
	// Size is the blob's size, -1 when not known.
	Size int64
	// Location, when set, is where the client is redirected.
	Location string

	file *os.File
	resp *http.Response

	b         *Blobs
	repo      Repo
	digest    v1.Hash
	closeOnce sync.Once
}

// Serve writes the answer to w. An error after the headers are out (a
// blob cut short or not matching its digest) leaves a short body: the
// caller must then cut the connection, so that it is never taken for a
// whole one. Before that, nothing is written and the caller answers the
// error.
func (a *BlobAnswer) Serve(w http.ResponseWriter, r *http.Request) error {
	switch {
	case a.Location != "":
		w.Header().Set("Location", a.Location)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil
	case a.file != nil:
		hd := w.Header()
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Etag", `"`+a.digest.String()+`"`)
		// Ranges and HEAD too, from the file itself.
		bw := &blobHeaders{ResponseWriter: w, digest: a.digest}
		http.ServeContent(bw, r, "", time.Time{}, a.file)
		return bw.err
	}
	hd := w.Header()
	for _, k := range []string{"Content-Length", "Accept-Ranges", "Etag", "Last-Modified"} {
		if v := a.resp.Header.Get(k); v != "" {
			hd.Set(k, v)
		}
	}
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Docker-Content-Digest", a.digest.String())
	if r.Method == http.MethodHead {
		w.WriteHeader(a.resp.StatusCode)
		return nil
	}
	// A whole blob's 200 goes out with its first bytes: until then a
	// failure (a blob cut short, or not matching its digest, that fits in
	// the chunk held back) is still an error the caller can answer.
	return a.streamAndCache(w, r)
}

// streamAndCache streams a whole upstream blob to the client, checked
// against its digest, and keeps a copy in the store for the next pull. The
// copy is written by the goroutine that hashes, a chunk behind the client,
// and committed once the client has all of it.
func (a *BlobAnswer) streamAndCache(w io.Writer, r *http.Request) error {
	cache := a.b.rw.CacheBlob(r.Context(), a.repo)
	if cache == nil {
		return copyVerified(w, a.resp.Body, a.digest, nil)
	}
	if err := copyVerified(w, a.resp.Body, a.digest, cache); err != nil {
		cache.Discard()
		return err
	}
	a.b.keep(r.Context(), a.repo, a.digest, cache)
	return nil
}

// Close releases the answer's file or upstream transfer.
func (a *BlobAnswer) Close() {
	a.closeOnce.Do(func() {
		if a.file != nil {
			a.file.Close()
		}
		if a.resp != nil {
			a.resp.Body.Close()
		}
		if a.b != nil { // nil for an answer made by hand: a test's fake source
			a.b.keeping.Done()
		}
	})
}

// blobHeaders adds Docker-Content-Digest to successful answers only: an
// error that ServeContent writes, such as a 416, is not the blob. It
// keeps the first write error, which ServeContent drops: a client cut
// mid-blob (gone, or taking nothing for the stall bound) is an error of
// the answer, as it is for a streamed blob.
type blobHeaders struct {
	http.ResponseWriter
	digest v1.Hash
	err    error
}

func (b *blobHeaders) Write(p []byte) (int, error) {
	n, err := b.ResponseWriter.Write(p)
	b.fail(err)
	return n, err
}

// ReadFrom keeps the file ServeContent sends on its way to the
// connection's sendfile (see copyVerified).
func (b *blobHeaders) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(b.ResponseWriter, src)
	b.fail(err)
	return n, err
}

func (b *blobHeaders) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *blobHeaders) WriteHeader(code int) {
	if code < http.StatusBadRequest {
		b.Header().Set("Docker-Content-Digest", b.digest.String())
	}
	b.ResponseWriter.WriteHeader(code)
}
