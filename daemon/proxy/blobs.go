package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobMode is how an audience gets the upstream blobs the store does not
// hold.
type BlobMode string

const (
	// BlobStream streams them through the daemon, verified against their
	// digest and kept in the store.
	BlobStream BlobMode = "stream"
	// BlobRedirect passes the upstream's own redirect (a signed storage or
	// CDN URL) on to the client, once the audience's dial policy accepts
	// its target; it streams when there is none to pass on.
	BlobRedirect BlobMode = "redirect"
)

// Where a blob answer comes from: the event's Source, and a metrics label.
const (
	SourceStore    = "store"
	SourceUpstream = "upstream"
	SourceRedirect = "redirect"
	SourceOffload  = "offload"
)

// Offload finds a blob the daemon serves itself (an injected layer) in the
// offload store: a presigned URL, once the blob's upload is complete.
type Offload interface {
	Location(ctx context.Context, d v1.Hash) (url string, ok bool)
}

// Uploader takes a blob the store now holds to the offload store, in the
// background, under its own lifetime (the daemon's): the request that
// brought the blob is long over when the upload runs, and a daemon that
// stops must be able to cut it.
type Uploader interface {
	Upload(digests ...v1.Hash)
}

// Blobs is the one place that decides how a blob request is answered:
// from the store, redirected to where the upstream redirects, or streamed
// from the upstream, verified and cached. It is the proxy's blob store
// decorator, as distribution's proxyblobstore is.
type Blobs struct {
	rw   *Rewriting
	up   *Upstream
	mode BlobMode
	// offload, in redirect mode, sends clients to the offload store for
	// the blobs the store holds; nil means none.
	offload Offload
	// upload, in redirect mode, takes the upstream blobs that streamed to
	// the offload store once they are verified and kept, so that their
	// next pull is a redirect; nil means none (offload.upstream_blobs).
	upload Uploader
	log    *slog.Logger
	// keeping counts the answers not yet closed and the blobs being
	// committed to the store after their client has them all.
	keeping sync.WaitGroup
}

// NewBlobs returns the blob source of an audience's Rewriting and
// Upstream. An empty mode streams.
func NewBlobs(rw *Rewriting, up *Upstream, mode BlobMode, log *slog.Logger, opts ...BlobsOption) *Blobs {
	if mode == "" {
		mode = BlobStream
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Blobs{rw: rw, up: up, mode: mode, log: log}
	for _, o := range opts {
		o(b)
	}
	return b
}

// BlobsOption is an optional part of a blob source.
type BlobsOption func(*Blobs)

// WithOffload has the blobs the store holds for a repository, in redirect
// mode, answered by a redirect to the offload store once they are there.
// A nil o is none.
func WithOffload(o Offload) BlobsOption { return func(b *Blobs) { b.offload = o } }

// WithUploader has the upstream blobs that streamed, in redirect mode,
// uploaded to the offload store once kept. A nil u is none.
func WithUploader(u Uploader) BlobsOption { return func(b *Blobs) { b.upload = u } }

// Wait waits until the answers given are closed and the blobs being kept
// in the store are committed: a daemon that stops, or a test that removes
// the store, waits for them.
func (b *Blobs) Wait() { b.keeping.Wait() }

// Open decides how to answer a blob request (method GET or HEAD, rangeHdr
// the client's Range header). The caller serves the answer and closes it.
func (b *Blobs) Open(ctx context.Context, repo Repo, d v1.Hash, method, rangeHdr string) (*BlobAnswer, error) {
	// Counted from the start, so that a Wait after the client has its
	// bytes also waits for the commit this answer is about to begin.
	b.keeping.Add(1)
	a, err := b.open(ctx, repo, d, method, rangeHdr)
	if err != nil {
		b.keeping.Done()
		return nil, err
	}
	a.b, a.repo, a.digest = b, repo, d
	return a, nil
}

func (b *Blobs) open(ctx context.Context, repo Repo, d v1.Hash, method, rangeHdr string) (*BlobAnswer, error) {
	// What the store holds for repo (the injected layers, rewritten
	// configs, blobs kept before) is served from there, or, where the
	// offload store has it, from there.
	if a := b.offloaded(ctx, repo, d, method); a != nil {
		return a, nil
	}
	if a := b.stored(repo, d); a != nil {
		return a, nil
	}
	if method == http.MethodHead {
		// A HEAD is answered by the daemon, never redirected: it moves no
		// blob bytes anyway.
		resp, err := b.up.Blob(ctx, repo, d, method)
		if err != nil {
			return nil, err
		}
		return &BlobAnswer{Source: SourceUpstream, Size: resp.ContentLength, resp: resp}, nil
	}
	var note string
	if b.mode == BlobRedirect {
		a, why, err := b.redirect(ctx, repo, d, rangeHdr)
		if a != nil || err != nil {
			return a, err
		}
		note = why
	}
	a, err := b.stream(ctx, repo, d, rangeHdr)
	if a != nil {
		a.Note = note
	}
	return a, err
}

// redirect asks the upstream for d without following its redirect. It
// returns the redirect to pass on, or the upstream's whole blob to stream
// when it did not redirect; otherwise why it streams instead.
func (b *Blobs) redirect(ctx context.Context, repo Repo, d v1.Hash, rangeHdr string) (*BlobAnswer, string, error) {
	resp, loc, err := b.up.BlobOrRedirect(ctx, repo, d)
	if err != nil {
		return nil, "", err
	}
	if loc == nil {
		if rangeHdr != "" {
			// A range is cut from the verified whole in the store.
			resp.Body.Close()
			return nil, "the upstream did not redirect", nil
		}
		return &BlobAnswer{Source: SourceUpstream, Note: "the upstream did not redirect", Size: resp.ContentLength, resp: resp}, "", nil
	}
	if err := b.up.CheckLocation(ctx, repo, loc); err != nil {
		why := "redirect refused: " + err.Error()
		b.log.Debug("stream a blob instead of passing its redirect on", "repo", repo.String(), "digest", d.String(), "reason", why)
		return nil, why, nil
	}
	// The client gets the upstream's URL as it is: its signature is its
	// credential, and none of ours is in it.
	return &BlobAnswer{Source: SourceRedirect, Size: -1, Location: loc.String()}, "", nil
}

// stream answers d from the upstream, through the daemon.
func (b *Blobs) stream(ctx context.Context, repo Repo, d v1.Hash, rangeHdr string) (*BlobAnswer, error) {
	if rangeHdr != "" {
		// An upstream's partial answer cannot be checked against the
		// digest, and passed on unchecked it would be whatever the far
		// side sent. The range is cut from the whole blob, verified and
		// kept in the store first.
		if err := b.fetchWhole(ctx, repo, d); err != nil {
			return nil, err
		}
		if a := b.stored(repo, d); a != nil {
			a.Source = SourceUpstream
			return a, nil
		}
		// Nowhere to keep it: the whole blob, which a server may send
		// for a Range request (RFC 9110, 14.2).
	}
	resp, err := b.up.Blob(ctx, repo, d, http.MethodGet)
	if err != nil {
		return nil, err
	}
	return &BlobAnswer{Source: SourceUpstream, Size: resp.ContentLength, resp: resp}, nil
}

// offloaded is a redirect to the offload store for a GET of a blob that the
// store holds for repo, once its upload is complete; nil otherwise, and
// the store answers: a pull never fails for want of the offload.
func (b *Blobs) offloaded(ctx context.Context, repo Repo, d v1.Hash, method string) *BlobAnswer {
	if b.offload == nil || b.mode != BlobRedirect || method != http.MethodGet || !b.rw.Linked(repo, d) {
		return nil
	}
	u, ok := b.offload.Location(ctx, d)
	if !ok {
		return nil
	}
	return &BlobAnswer{Source: SourceOffload, Size: -1, Location: u}
}

// stored is the store's answer, if it holds d for repo.
func (b *Blobs) stored(repo Repo, d v1.Hash) *BlobAnswer {
	if !b.rw.Linked(repo, d) {
		return nil
	}
	f, err := b.rw.OpenBlob(d)
	if err != nil {
		return nil
	}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	return &BlobAnswer{Source: SourceStore, Size: size, file: f}
}

// fetchWhole puts the whole upstream blob d of repo in the store, checked
// against its digest. A store that cannot take it is no error: the caller
// then streams.
func (b *Blobs) fetchWhole(ctx context.Context, repo Repo, d v1.Hash) error {
	cache := b.rw.CacheBlob(ctx, repo)
	if cache == nil {
		return nil
	}
	resp, err := b.up.Blob(ctx, repo, d, http.MethodGet)
	if err != nil {
		cache.Discard()
		return err
	}
	defer resp.Body.Close()
	if err := copyVerified(nil, resp.Body, d, cache); err != nil {
		cache.Discard()
		return err
	}
	if err := cache.Keep(context.WithoutCancel(ctx), d); err != nil {
		return err
	}
	b.kept(d)
	return nil
}

// kept is told of an upstream blob verified and committed to the store:
// in redirect mode, the upstream streamed it rather than redirect, and
// the offload store takes it, if it takes upstream blobs. Its next pull
// redirects there, once it is linked for the repository asked, as every
// stored blob must be (see offloaded).
func (b *Blobs) kept(d v1.Hash) {
	if b.upload != nil && b.mode == BlobRedirect {
		b.upload.Upload(d)
	}
}

// keep commits a streamed blob to the store once its client has it all.
// The fsync of a big blob must not hold the client's answer: the commit
// runs after it, on a context that outlives the request.
func (b *Blobs) keep(ctx context.Context, repo Repo, d v1.Hash, cache *BlobCache) {
	ctx = context.WithoutCancel(ctx)
	b.keeping.Add(1)
	go func() {
		defer b.keeping.Done()
		if err := cache.Keep(ctx, d); err != nil {
			b.log.Warn("keep an upstream blob in the cache", "repo", repo.String(), "digest", d.String(), "error", err)
			return
		}
		b.kept(d)
	}()
}
