package api

import (
	"fmt"
	"net/http"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// referrers answers GET /v2/<name>/referrers/<digest>, the OCI 1.1
// referrers API. allowed, when set, decides which subjects may be asked
// about: a container token's route answers for its own image only.
func (h *Registry) referrers(w http.ResponseWriter, r *http.Request, rt route, allowed func(v1.Hash) error) error {
	repo, err := rt.repo(h.defaultRegistry)
	if err != nil {
		return err
	}
	d, err := proxy.ParseDigest(rt.ref)
	if err != nil {
		return err
	}
	if allowed != nil {
		if err := allowed(d); err != nil {
			return err
		}
	}
	artifactType := r.URL.Query().Get("artifactType")
	ans, err := h.rw.Referrers(r.Context(), repo, d, artifactType)
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", string(proxy.ReferrersMediaType))
	hd.Set("Content-Length", strconv.Itoa(len(ans.Bytes)))
	if ans.Filtered {
		hd.Set("OCI-Filters-Applied", "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(ans.Bytes)
	}
	return nil
}

// tokenSubject allows the referrers of the token image's own manifests
// only: the token grants that image, not its repository.
func (h *Registry) tokenSubject(r *http.Request, img token.Image) func(v1.Hash) error {
	return func(d v1.Hash) error {
		root, err := h.rw.Rewrite(r.Context(), img.Repo, proxy.Ref{Digest: img.Digest}, img.Recipe)
		if err != nil {
			return err
		}
		if d == root.Digest || d == img.Digest {
			return nil
		}
		digests, err := h.tokenDigests(r.Context(), img, root)
		if err != nil {
			return err
		}
		if !digests[d] {
			return newError(http.StatusNotFound, codeManifestUnknown,
				fmt.Sprintf("%s is not a manifest of the image of container token %s", d, img.Short))
		}
		return nil
	}
}
