package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/layer"
)

// acceptHeader asks for the manifest types the proxy can serve.
func acceptHeader() http.Header {
	var ts []string
	for _, t := range ManifestTypes {
		ts = append(ts, string(t))
	}
	return http.Header{"Accept": {strings.Join(ts, ", ")}}
}

// Head resolves ref to a descriptor without fetching the manifest. On Docker
// Hub a HEAD does not count against the pull rate limit.
func (u *Upstream) Head(ctx context.Context, repo Repo, ref Ref) (v1.Descriptor, error) {
	resp, err := u.do(ctx, repo, http.MethodHead, u.url(repo, "manifests", ref.String()), acceptHeader(), http.StatusOK)
	if err != nil {
		return v1.Descriptor{}, err
	}
	resp.Body.Close()
	d, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: HEAD %s: %v", ErrNoDigest, repo, ref, err)
	}
	return v1.Descriptor{
		Digest:    d,
		MediaType: contentType(resp),
		Size:      resp.ContentLength,
	}, nil
}

// Manifest fetches a manifest. A manifest fetched by digest is checked
// against that digest.
func (u *Upstream) Manifest(ctx context.Context, repo Repo, ref Ref) (Manifest, error) {
	resp, err := u.do(ctx, repo, http.MethodGet, u.url(repo, "manifests", ref.String()), acceptHeader(), http.StatusOK)
	if err != nil {
		return Manifest{}, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp, MaxManifestSize)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: manifest %s: %w", repo, ref, err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return Manifest{}, err
	}
	if ref.IsDigest() && d != ref.Digest {
		return Manifest{}, fmt.Errorf("%w: %s: manifest %s hashes to %s", ErrDigestMismatch, repo, ref, d)
	}
	mt := contentType(resp)
	if !mt.IsIndex() && !mt.IsImage() && !mt.IsSchema1() {
		// Some registries answer application/json or nothing at all: the
		// bytes say what they are.
		if mt, err = layer.MediaType(b); err != nil {
			return Manifest{}, fmt.Errorf("%s: manifest %s: %w", repo, ref, err)
		}
	}
	return Manifest{Bytes: b, MediaType: mt, Digest: d}, nil
}

// contentType is a response's media type, without parameters.
func contentType(resp *http.Response) types.MediaType {
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return types.MediaType(strings.TrimSpace(mt))
}

// ErrDigestMismatch marks upstream content that does not hash to the digest
// it was asked for.
var ErrDigestMismatch = errors.New("upstream content does not match its digest")

// ErrNoDigest marks a HEAD answer without a usable Docker-Content-Digest,
// which the spec allows: only a GET can then tell the digest.
var ErrNoDigest = errors.New("upstream gave no digest")

// ErrTooLarge marks an upstream document over its size limit.
var ErrTooLarge = errors.New("too large")

// ErrBadAnswer is an upstream answer the proxy cannot use: malformed, or
// pointing where the proxy does not follow.
var ErrBadAnswer = errors.New("bad upstream answer")

func readLimited(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		// A timeout stays one inside ErrUnavailable: the API answers 504.
		return nil, fmt.Errorf("%w: reading body: %w", ErrUnavailable, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// SmallBlob fetches a blob that is read whole, such as an image config, and
// checks it against its digest.
func (u *Upstream) SmallBlob(ctx context.Context, repo Repo, d v1.Hash) ([]byte, error) {
	resp, err := u.do(ctx, repo, http.MethodGet, u.url(repo, "blobs", d.String()), nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("%s: blob %s: %w", repo, d, err)
	}
	got, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if got != d {
		return nil, fmt.Errorf("%w: %s: blob %s hashes to %s", ErrDigestMismatch, repo, d, got)
	}
	return b, nil
}

// Blob starts a whole blob transfer, GET or HEAD. The caller streams and
// closes the body. There is no Range: a part of a blob cannot be checked
// against its digest.
func (u *Upstream) Blob(ctx context.Context, repo Repo, d v1.Hash, method string) (*http.Response, error) {
	return u.doBounded(ctx, repo, method, u.url(repo, "blobs", d.String()), nil, method == http.MethodGet, http.StatusOK)
}

// Tags lists tags, passing the client's pagination query through.
func (u *Upstream) Tags(ctx context.Context, repo Repo, rawQuery string) (*http.Response, error) {
	url := u.url(repo, "tags", "list")
	if rawQuery != "" {
		url += "?" + rawQuery
	}
	return u.do(ctx, repo, http.MethodGet, url, nil, http.StatusOK)
}
