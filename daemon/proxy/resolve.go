package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// head resolves a tag with a HEAD. A HEAD answer has no body, so when it
// fails for a reason a body would explain (404, 401, 403), when the
// registry does not do HEAD (405), or when it gives no digest, a GET asks
// again: its error body tells NAME_UNKNOWN from MANIFEST_UNKNOWN, and its
// success gives the digest.
func (rw *Rewriting) head(ctx context.Context, repo Repo, ref Ref) (v1.Descriptor, error) {
	return shared(ctx, &rw.heads, repo.String()+" "+ref.String(), rewriteTimeout, func(ctx context.Context) (v1.Descriptor, error) {
		return rw.headOnce(ctx, repo, ref)
	})
}

func (rw *Rewriting) headOnce(ctx context.Context, repo Repo, ref Ref) (v1.Descriptor, error) {
	d, err := rw.up.Head(ctx, repo, ref)
	if err == nil || !askAgain(err) {
		return d, err
	}
	m, err := rw.up.Manifest(ctx, repo, ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Bytes))}, nil
}

func askAgain(err error) bool {
	if errors.Is(err, ErrNoDigest) {
		return true
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	switch te.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// tagTarget finds the upstream manifest a tag names. The tag form of a
// digest, sha256-<hex>, pins that upstream digest (pinned is then true, and
// only the digest is known), unless the upstream has a tag of that name:
// the OCI referrers tag schema stores lists of artifacts under exactly such
// tags, and those are tags like any other.
func (rw *Rewriting) tagTarget(ctx context.Context, repo Repo, ref Ref) (d v1.Descriptor, pinned bool, err error) {
	pin, ok := digestTag(ref.Tag)
	if !ok {
		d, err = rw.head(ctx, repo, ref)
		return d, false, err
	}
	// A bare HEAD first: its 404 is the common answer, and asking again
	// with a GET, as head does, would only spend a request to learn why.
	d, err = rw.up.Head(ctx, repo, ref)
	if err != nil && !isNotFound(err) && askAgain(err) {
		d, err = rw.head(ctx, repo, ref)
	}
	if isNotFound(err) {
		return v1.Descriptor{Digest: pin}, true, nil
	}
	return d, false, err
}

// digestTag reads the tag form of an upstream digest.
func digestTag(tag string) (v1.Hash, bool) {
	hexPart, ok := strings.CutPrefix(tag, DigestTagPrefix)
	if !ok || strings.ToLower(hexPart) != hexPart {
		return v1.Hash{}, false
	}
	d, err := ParseDigest("sha256:" + hexPart)
	return d, err == nil
}
