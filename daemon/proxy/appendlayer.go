package proxy

// The rewrite proper: an upstream manifest fetched, its image or each of
// its platforms' images given the recipe's layers, and the result kept
// in the store, linked to the repository. Rewriting (rewrite.go) decides
// when it runs; the records (records.go) remember what it made.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/tower-reg/tower-reg/layer"
)

// rewriteTimeout bounds one rewrite: the manifests and configs it fetches
// are small, so this is long only for a registry that is failing.
const rewriteTimeout = 2 * time.Minute

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
