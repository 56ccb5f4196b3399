package api

import (
	"context"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// The handlers consume the proxy through these: api tests answer them with
// fakes, and the daemon passes the proxy's types, as the checks below hold.
var (
	_ ManifestSource = (*proxy.Rewriting)(nil)
	_ BlobSource     = (*proxy.Blobs)(nil)
	_ TagSource      = (*proxy.Upstream)(nil)
	_ CredsChecker   = (*proxy.Upstream)(nil)
)

// ManifestSource serves manifests with the layer appended: proxy.Rewriting.
type ManifestSource interface {
	// Get resolves ref in repo and returns its manifest, rewritten with
	// the current generation's layer.
	Get(ctx context.Context, repo proxy.Repo, ref proxy.Ref) (proxy.Served, error)
	// Rewrite is Get with the recipe of a container token's image.
	Rewrite(ctx context.Context, repo proxy.Repo, ref proxy.Ref, r proxy.Recipe) (proxy.Served, error)
	// Referrers lists the referrers of d, filtered by artifactType.
	Referrers(ctx context.Context, repo proxy.Repo, d v1.Hash, artifactType string) (proxy.Referrers, error)
}

// BlobSource decides how each blob request is answered: proxy.Blobs.
type BlobSource interface {
	Open(ctx context.Context, repo proxy.Repo, d v1.Hash, method, rangeHdr string) (*proxy.BlobAnswer, error)
	// Wait waits for the blobs being kept in the store.
	Wait()
}

// TagSource lists an upstream repository's tags: proxy.Upstream. The
// caller closes the answer's body.
type TagSource interface {
	Tags(ctx context.Context, repo proxy.Repo, rawQuery string) (*http.Response, error)
}

// CredsChecker checks a login against a registry: proxy.Upstream.
type CredsChecker interface {
	ValidateCreds(ctx context.Context, registry, user, password string) (bool, error)
}
