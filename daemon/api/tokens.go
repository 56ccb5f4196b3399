package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// Tokens is the container token service that the API serves.
type Tokens interface {
	// Issue resolves the request's image, fetches its layers and issues a
	// token.
	Issue(ctx context.Context, req token.Request) (token.Response, error)
	// Resolve finds what a token pulls; a token that is unknown or expired
	// is a *token.UnknownError or *token.ExpiredError.
	Resolve(tok string) (token.Image, error)
	// CountPull counts a pull through a token.
	CountPull(tok string)
}

// tokenPrefix starts the names of container token routes.
const tokenPrefix = "wt/"

// tokenRoute reports whether rt is in the container tokens' name space:
// "wt" and everything under "wt/". Each such name is served by the token
// routes, which answer a malformed one themselves, so no such name ever
// reaches an upstream with the developer's credentials (nor a token in an
// upstream's URL). Docker Hub's "wt" user is still docker.io/wt/....
func tokenRoute(rt route) bool {
	return rt.name == "wt" || strings.HasPrefix(rt.name, tokenPrefix)
}

// tokenRoute serves /v2/wt/<token>/<repository>/...: the token's image and
// nothing else, whatever tag the path names.
func (h *Registry) tokenRoute(x *exchange) error {
	w, r, rt := x.w, x.r, x.rt
	tok, name, ok := strings.Cut(strings.TrimPrefix(rt.name, tokenPrefix), "/")
	if h.tokens == nil || !ok || name == "" {
		return newError(http.StatusNotFound, codeNameUnknown,
			"a container token route is /v2/wt/<token>/<repository>/...")
	}
	img, err := h.tokens.Resolve(tok)
	if err != nil {
		if errors.Is(err, token.ErrUnknown) || errors.Is(err, token.ErrExpired) {
			// DENIED, not a 404 or 401: Docker prints a denial's message as
			// it is, and it says which token and why.
			err = &apiError{Status: http.StatusForbidden, Code: codeDenied, Message: err.Error(), Err: err}
		}
		return err
	}
	if name != img.Repo.Path {
		return newError(http.StatusForbidden, codeDenied,
			fmt.Sprintf("container token %s is for the repository %s, not %s", img.Short, img.Repo.Path, name))
	}
	rt.upstream = &img.Repo
	x.rt = rt
	switch rt.kind {
	case kindManifest:
		return h.manifest(x, img.Short, func() (servedManifest, error) {
			s, err := h.tokenManifest(r, rt, img)
			// A pull starts with a GET by tag; what follows by digest is
			// the same pull.
			if err == nil && r.Method == http.MethodGet && !strings.HasPrefix(rt.ref, "sha256:") {
				h.tokens.CountPull(tok)
			}
			return s, err
		})
	case kindBlob:
		return h.blob(x, img.Short, func(d v1.Hash) error { return h.tokenBlob(r.Context(), img, d) })
	case kindTags:
		h.tokenTags(w, r, rt, img)
		return nil
	case kindReferrers:
		return h.referrers(w, r, rt, h.tokenSubject(r, img))
	}
	return newError(http.StatusNotFound, codeUnsupported, "no such registry route: "+r.URL.Path)
}

// tokenManifest answers a manifest request of a token's route: any tag is
// the token's image; a digest must be one of its manifests.
func (h *Registry) tokenManifest(r *http.Request, rt route, img token.Image) (servedManifest, error) {
	ref, err := proxy.ParseRef(rt.ref)
	if err != nil {
		return servedManifest{}, err
	}
	root, err := h.rw.Rewrite(r.Context(), img.Repo, proxy.Ref{Digest: img.Digest}, img.Recipe)
	if err != nil {
		return servedManifest{}, err
	}
	if !ref.IsDigest() || ref.Digest == root.Digest {
		return h.forClient(r, img.Repo, ref, root)
	}
	digests, err := h.tokenDigests(r.Context(), img, root)
	if err != nil {
		return servedManifest{}, err
	}
	if !digests[ref.Digest] {
		return servedManifest{}, newError(http.StatusNotFound, codeManifestUnknown,
			fmt.Sprintf("%s is not a manifest of the image of container token %s", ref.Digest, img.Short))
	}
	s, err := h.rw.Get(r.Context(), img.Repo, ref)
	if err != nil {
		return servedManifest{}, err
	}
	return servedManifest{Served: s, repo: img.Repo}, nil
}

// tokenBlob refuses blobs that are not the token's image's: a token
// authorizes its own image only, not the rest of the repository.
func (h *Registry) tokenBlob(ctx context.Context, img token.Image, d v1.Hash) error {
	root, err := h.rw.Rewrite(ctx, img.Repo, proxy.Ref{Digest: img.Digest}, img.Recipe)
	if err != nil {
		return err
	}
	digests, err := h.tokenDigests(ctx, img, root)
	if err != nil {
		return err
	}
	if !digests[d] {
		return newError(http.StatusNotFound, codeBlobUnknown,
			fmt.Sprintf("%s is not a blob of the image of container token %s", d, img.Short))
	}
	return nil
}

// tokenDigests lists every manifest and blob of a token's rewritten image:
// the root, and for an index each child with its config and layers. It is
// kept per rewritten root, which never changes.
func (h *Registry) tokenDigests(ctx context.Context, img token.Image, root proxy.Served) (map[v1.Hash]bool, error) {
	if ds, ok := h.closures.get(root.Digest); ok {
		return ds, nil
	}
	ds := map[v1.Hash]bool{root.Digest: true}
	manifests := []proxy.Served{root}
	if root.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(root.Bytes))
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", root.Digest, err)
		}
		manifests = manifests[:0]
		for _, c := range idx.Manifests {
			ds[c.Digest] = true
			s, err := h.rw.Get(ctx, img.Repo, proxy.Ref{Digest: c.Digest})
			if err != nil {
				return nil, err
			}
			manifests = append(manifests, s)
		}
	}
	for _, s := range manifests {
		if !s.MediaType.IsImage() {
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(s.Bytes))
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", s.Digest, err)
		}
		ds[m.Config.Digest] = true
		for _, l := range m.Layers {
			ds[l.Digest] = true
		}
	}
	h.closures.put(root.Digest, ds)
	return ds, nil
}

// maxClosures bounds the token closures kept: one per rewritten root, a
// few KiB each. Past it the cache starts over; a closure is rebuilt from
// the store in a few file reads.
const maxClosures = 1024

// closureCache keeps tokenDigests' answers by rewritten root digest.
type closureCache struct {
	mu sync.Mutex
	m  map[v1.Hash]map[v1.Hash]bool
}

func (c *closureCache) get(root v1.Hash) (map[v1.Hash]bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ds, ok := c.m[root]
	return ds, ok
}

func (c *closureCache) put(root v1.Hash, ds map[v1.Hash]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxClosures {
		c.m = map[v1.Hash]map[v1.Hash]bool{}
	}
	c.m[root] = ds
}

// tokenTags lists the one tag a token's image has.
func (h *Registry) tokenTags(w http.ResponseWriter, r *http.Request, rt route, img token.Image) {
	tag := proxy.DigestTagPrefix + img.Digest.Hex
	body, _ := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, []string{tag}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// containerToken is POST /container-token.
func (a *Admin) containerToken(w http.ResponseWriter, r *http.Request) error {
	if a.tokens == nil {
		return newError(http.StatusNotFound, codeUnsupported, "container tokens are not enabled")
	}
	if err := checkLocalRequest(r); err != nil {
		return err
	}
	if err := a.allowToken(); err != nil {
		return err
	}
	req, err := token.DecodeRequest(http.MaxBytesReader(w, r.Body, token.MaxRequestBytes))
	if err != nil {
		return err
	}
	resp, err := a.tokens.Issue(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// checkLocalRequest refuses what a web page could send: the admin API is
// for this machine's tools, and a page the developer visits must not be
// able to have the daemon read local files or spend their credentials. A
// JSON content type makes a browser ask first (a CORS preflight, which
// nothing here answers), and tools send no Origin.
func checkLocalRequest(r *http.Request) error {
	if r.Header.Get("Origin") != "" {
		return newError(http.StatusForbidden, codeDenied, "requests from web pages are refused")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return newError(http.StatusUnsupportedMediaType, codeBadRequest, "the body must be application/json")
	}
	return nil
}
