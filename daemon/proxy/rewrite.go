package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
)

// DigestTagPrefix starts the tag form of an upstream digest: the tag
// "sha256-<hex>" names the upstream manifest sha256:<hex>, rewritten. A pull
// by the upstream digest itself cannot be rewritten (the client checks the
// bytes against the digest), so this is how to pin an exact upstream image.
const DigestTagPrefix = "sha256-"

// Generation is one packed layer set: the layers injected into every image
// while it is current.
type Generation struct {
	// ID changes exactly when the layers change; it keys the rewrite cache.
	ID string
	// Number counts generations since the daemon started.
	Number int
	Set    layer.Set
}

// Layers gives the current generation.
type Layers interface {
	Current() Generation
	// Settled is the current generation once the layer changes already
	// under way are in it (bounded): what a pull by tag serves.
	Settled(ctx context.Context) Generation
}

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

// rewriteTimeout bounds one rewrite: the manifests and configs it fetches
// are small, so this is long only for a registry that is failing.
const rewriteTimeout = 2 * time.Minute

type rewriteRecord struct{ Digest v1.Hash }

// rewritten finds the rewrite of an upstream digest for a generation.
func (rw *Rewriting) rewritten(key string) (v1.Hash, bool) {
	rw.forgetCollected()
	if d, ok := rw.rewrites.get(key); ok {
		return d, true
	}
	var rec rewriteRecord
	if rw.store.GetRecord(recRewrite, key, &rec) != nil {
		return v1.Hash{}, false
	}
	rw.rewrites.put(key, rec.Digest)
	return rec.Digest, true
}

// stored serves a rewritten manifest from the store.
func (rw *Rewriting) stored(repo Repo, d v1.Hash) (Served, error) {
	rw.forgetCollected()
	if s, ok := rw.served.get(rw.linkKey(repo, d)); ok {
		return s, nil
	}
	if !rw.Linked(repo, d) {
		return Served{}, store.ErrNotFound
	}
	var rec manifestRecord
	if err := rw.store.GetRecordOf(d, recManifest, d.String(), &rec); err != nil {
		return Served{}, err
	}
	b, err := rw.store.ReadBlob(d)
	if err != nil {
		return Served{}, err
	}
	s := Served{
		Manifest:  Manifest{Bytes: b, MediaType: rec.MediaType, Digest: d},
		Upstream:  rec.Upstream,
		Cached:    true,
		Platforms: rec.Platforms,
	}
	rw.served.put(rw.linkKey(repo, d), s)
	return s, nil
}

// rewritable reports whether m is something the proxy rewrites: an index
// or an image. Schema 1 is refused rather than passed through: it cannot
// carry the layer, and serving it unchanged would skip the injection
// silently.
func rewritable(m Manifest) (bool, error) {
	switch m.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		return true, nil
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		return layer.IsImage(m.Bytes), nil
	}
	return false, fmt.Errorf("%w: media type %q", layer.ErrUnsupported, m.MediaType)
}

// rewrite fetches the upstream manifest d and stores its rewritten form.
func (rw *Rewriting) rewrite(ctx context.Context, repo Repo, d v1.Hash, r Recipe) (Served, error) {
	m, err := rw.up.Manifest(ctx, repo, Ref{Digest: d})
	if err != nil {
		return Served{}, err
	}
	switch m.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		return rw.rewriteIndex(ctx, repo, m, r)
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		if !layer.IsImage(m.Bytes) {
			return Served{Manifest: m, Upstream: m.Digest}, nil
		}
		img, err := rw.rewriteImage(ctx, repo, m, r, nil)
		if err != nil {
			return Served{}, err
		}
		return rw.keep(ctx, repo, Manifest{Bytes: img.Manifest, MediaType: m.MediaType, Digest: img.ManifestDigest}, m.Digest, nil)
	default:
		return Served{}, fmt.Errorf("%w: %s: manifest %s of type %q", layer.ErrUnsupported, repo, d, m.MediaType)
	}
}

// rewriteImage appends the layer for the image's platform to the image
// manifest m and stores the new config; the caller stores the manifest. The
// platform is the index entry's when there is one, else the config's: a
// single-platform image still needs the entry built for its architecture.
func (rw *Rewriting) rewriteImage(ctx context.Context, repo Repo, m Manifest, r Recipe, p *v1.Platform) (layer.Image, error) {
	var desc struct {
		Config v1.Descriptor `json:"config"`
	}
	if err := json.Unmarshal(m.Bytes, &desc); err != nil {
		return layer.Image{}, fmt.Errorf("%w: %s: manifest %s: %v", layer.ErrUnsupported, repo, m.Digest, err)
	}
	cfg, err := rw.up.SmallBlob(ctx, repo, desc.Config.Digest)
	if err != nil {
		return layer.Image{}, err
	}
	if p == nil {
		p = configPlatform(cfg)
	}
	ls := r.layersFor(p)
	img, err := layer.ApplyImage(m.Bytes, cfg, ls, r.Change)
	if err != nil {
		return layer.Image{}, fmt.Errorf("%s: manifest %s: %w", repo, m.Digest, err)
	}
	if _, err := rw.store.PutBytes(ctx, img.Config); err != nil {
		return layer.Image{}, err
	}
	linked := []v1.Hash{img.ConfigDigest}
	for _, l := range ls {
		linked = append(linked, l.GzipDigest)
	}
	return img, rw.link(ctx, repo, linked...)
}

// configPlatform reads the platform an image config declares; nil when it
// declares none, which selects the layer's common tree.
func configPlatform(cfg []byte) *v1.Platform {
	var c struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	}
	if json.Unmarshal(cfg, &c) != nil || c.OS == "" || c.Architecture == "" {
		return nil
	}
	return &v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}
}

// maxIndexFanout bounds the platform manifests rewritten at once.
const maxIndexFanout = 8

func (rw *Rewriting) rewriteIndex(ctx context.Context, repo Repo, m Manifest, r Recipe) (Served, error) {
	entries, err := layer.ImageEntries(m.Bytes)
	if err != nil {
		return Served{}, fmt.Errorf("%s: index %s: %w", repo, m.Digest, err)
	}
	repl := make([]v1.Descriptor, len(entries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxIndexFanout)
	for i, e := range entries {
		g.Go(func() error {
			child, err := rw.up.Manifest(gctx, repo, Ref{Digest: e.Digest})
			if err != nil {
				return err
			}
			if !layer.IsImage(child.Bytes) {
				// An artifact that names no platform (a signature, an
				// SBOM, an entry of a referrers tag's index) is kept as
				// it is: there is nothing to run, so nothing to append to.
				return nil
			}
			img, err := rw.rewriteImage(gctx, repo, child, r, e.Platform)
			if err != nil {
				return err
			}
			if _, err := rw.keep(gctx, repo, Manifest{Bytes: img.Manifest, MediaType: child.MediaType, Digest: img.ManifestDigest}, child.Digest, nil); err != nil {
				return err
			}
			repl[i] = v1.Descriptor{Digest: img.ManifestDigest, Size: int64(len(img.Manifest))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Served{}, err
	}
	var platforms []string
	var replacements []layer.Replacement
	rewritten := map[v1.Hash]bool{}
	for i, e := range entries {
		if repl[i].Digest == (v1.Hash{}) {
			continue // kept as it is
		}
		replacements = append(replacements, layer.Replacement{Index: e.Index, Old: e.Digest, New: repl[i]})
		rewritten[e.Digest] = true
		if e.Platform != nil {
			platforms = append(platforms, e.Platform.String())
		}
	}
	b, d, err := layer.RewriteIndex(m.Bytes, replacements)
	if err != nil {
		return Served{}, fmt.Errorf("%s: index %s: %w", repo, m.Digest, err)
	}
	s, err := rw.keep(ctx, repo, Manifest{Bytes: b, MediaType: m.MediaType, Digest: d}, m.Digest, platforms)
	if err != nil {
		return Served{}, err
	}
	return s, rw.recordPassed(ctx, repo, m, d, rewritten)
}

// keep stores a rewritten manifest and links it to repo.
func (rw *Rewriting) keep(ctx context.Context, repo Repo, m Manifest, upstream v1.Hash, platforms []string) (Served, error) {
	if _, err := rw.store.PutBytes(ctx, m.Bytes); err != nil {
		return Served{}, err
	}
	rec := manifestRecord{MediaType: m.MediaType, Upstream: upstream, Platforms: platforms}
	if err := rw.store.PutRecordOf(ctx, m.Digest, recManifest, m.Digest.String(), rec); err != nil {
		return Served{}, err
	}
	if err := rw.link(ctx, repo, m.Digest); err != nil {
		return Served{}, err
	}
	return Served{Manifest: m, Upstream: upstream, Platforms: platforms}, nil
}

// OpenBlob opens a blob the store holds (an injected layer or a rewritten
// config). Check Linked first: the store does not know repositories.
func (rw *Rewriting) OpenBlob(d v1.Hash) (*os.File, error) {
	return rw.store.OpenBlob(d)
}
