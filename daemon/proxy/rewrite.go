package proxy

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"github.com/tower-reg/tower-reg/daemon/store"
)

// DigestTagPrefix starts the tag form of an upstream digest: the tag
// "sha256-<hex>" names the upstream manifest sha256:<hex>, rewritten. A pull
// by the upstream digest itself cannot be rewritten (the client checks the
// bytes against the digest), so this is how to pin an exact upstream image.
const DigestTagPrefix = "sha256-"

// UpstreamDigestError is a pull by the digest of an upstream image or index.
type UpstreamDigestError struct {
	Repo   Repo
	Digest v1.Hash
}

func (e *UpstreamDigestError) Error() string {
	return fmt.Sprintf("%s is an upstream digest of %s: tower-reg appends a layer, so the image it serves has another digest; pull the tag %s%s to get exactly that upstream image with the layer",
		e.Digest, e.Repo, DigestTagPrefix, e.Digest.Hex)
}

// Served is a manifest answer and where it came from.
type Served struct {
	Manifest
	// Upstream is the upstream digest it was made from.
	Upstream v1.Hash
	// Cached is true when no rewrite was needed: the answer came from the
	// store.
	Cached bool
	// Platforms lists the platforms rewritten, for an index.
	Platforms []string
}

// Rewriting serves manifests from an upstream, with the layer appended.
type Rewriting struct {
	up     *Upstream
	store  *store.Store
	layers Layers
	// rewrites maps generation+upstream digest to the rewritten digest, and
	// served holds rewritten manifests by repo@digest: both mirror store
	// records, to spare the warm path its file reads.
	rewrites *memo[v1.Hash]
	served   *memo[Served]
	flight   singleflight.Group
	// heads shares a tag's HEAD among the requests that ask at once: a
	// hundred clients pulling the same cold tag make one upstream HEAD.
	heads singleflight.Group
	// scope names the audience whose links this Rewriting reads and
	// writes; see NewScopedRewriting.
	scope string
	// seen is the store's count of collections the memos were last
	// checked against (see forgetCollected).
	seen atomic.Uint64
}

// NewRewriting returns the rewriting decorator over up.
func NewRewriting(up *Upstream, st *store.Store, layers Layers) *Rewriting {
	return NewScopedRewriting(up, st, layers, "")
}

// NewScopedRewriting returns a rewriting decorator whose store links are
// its own: what one audience (the developer, with their credentials) made
// is not served to another (anonymous clients of the public handler) just
// because it is in the store. Each audience proves its access upstream,
// with its own credentials, before the store serves it.
func NewScopedRewriting(up *Upstream, st *store.Store, layers Layers, scope string) *Rewriting {
	return &Rewriting{
		up: up, store: st, layers: layers, scope: scope,
		rewrites: newMemo(4096, func(v1.Hash) int { return 1 }),
		served:   newMemo(32<<20, func(s Served) int { return len(s.Bytes) }),
	}
}

// Get answers a manifest request for repo and ref.
func (rw *Rewriting) Get(ctx context.Context, repo Repo, ref Ref) (Served, error) {
	if ref.IsDigest() {
		if s, err := rw.stored(repo, ref.Digest); err == nil {
			return s, nil
		}
		m, err := rw.up.Manifest(ctx, repo, ref)
		if err != nil {
			return Served{}, err
		}
		if ok, err := rewritable(m); err != nil {
			return Served{}, fmt.Errorf("%s: manifest %s: %w", repo, ref, err)
		} else if ok && !rw.passed(repo, ref.Digest) {
			return Served{}, &UpstreamDigestError{Repo: repo, Digest: ref.Digest}
		}
		// Attestations and other artifacts are referenced unchanged by the
		// rewritten index, so they are served as they are.
		return Served{Manifest: m, Upstream: m.Digest}, nil
	}

	return rw.Rewrite(ctx, repo, ref, rw.layers.Settled(ctx).Recipe())
}

// Rewrite answers a manifest request for repo and a tag (or the tag form of
// an upstream digest), with the upstream image rewritten by r.
func (rw *Rewriting) Rewrite(ctx context.Context, repo Repo, ref Ref, r Recipe) (Served, error) {
	desc := v1.Descriptor{Digest: ref.Digest}
	if !ref.IsDigest() {
		d, _, err := rw.tagTarget(ctx, repo, ref)
		if err != nil {
			return Served{}, err
		}
		desc = d
	}
	key := r.ID + " " + desc.Digest.String()
	if d, ok := rw.rewritten(key); ok {
		if s, err := rw.stored(repo, d); err == nil {
			return s, nil
		}
	}
	return shared(ctx, &rw.flight, repo.String()+" "+key, rewriteTimeout, func(ctx context.Context) (Served, error) {
		s, err := rw.rewrite(ctx, repo, desc.Digest, r)
		if err != nil {
			return Served{}, err
		}
		if err := rw.store.PutRecord(ctx, recRewrite, key, rewriteRecord{s.Digest}); err != nil {
			return Served{}, err
		}
		rw.rewrites.put(key, s.Digest)
		return s, nil
	})
}

// Resolve finds the upstream manifest a reference names now: a tag is
// asked upstream, a digest (or its tag form) is checked to exist there.
func (rw *Rewriting) Resolve(ctx context.Context, repo Repo, ref Ref) (v1.Descriptor, error) {
	if ref.IsDigest() {
		return rw.head(ctx, repo, ref)
	}
	d, pinned, err := rw.tagTarget(ctx, repo, ref)
	if err != nil || !pinned {
		return d, err
	}
	return rw.head(ctx, repo, Ref{Digest: d.Digest})
}

// Stored serves a manifest that this Rewriting made for repo, from the
// store only.
func (rw *Rewriting) Stored(repo Repo, d v1.Hash) (Served, error) { return rw.stored(repo, d) }

// OpenBlob opens a blob the store holds (an injected layer or a rewritten
// config). Check Linked first: the store does not know repositories.
func (rw *Rewriting) OpenBlob(d v1.Hash) (*os.File, error) {
	return rw.store.OpenBlob(d)
}
