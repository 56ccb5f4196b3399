package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// manifest answers a manifest request with what resolve gives; tok is the
// short form of the container token it goes through, if any.
func (h *Registry) manifest(x *exchange, tok string, resolve func() (servedManifest, error)) error {
	w, r, rt := x.w, x.r, x.rt
	start := time.Now()
	// Until the name resolves, the event shows it as the client wrote it:
	// with any token in it shortened.
	red := token.PathRedactor(r.URL.Path)
	ev := event.ManifestServed{Client: r.RemoteAddr, Method: r.Method, Repo: red.Replace(rt.name), Reference: red.Replace(rt.ref), Token: tok}
	if repo, err := rt.repo(h.defaultRegistry); err == nil {
		// The form of the blob lines, failed answers included: the
		// upstream repository, which says which registry was asked.
		ev.Repo = red.Replace(repo.String())
	}
	x.done = func(status int, err error) {
		if err != nil {
			ev.Status, ev.Err = status, red.Replace(err.Error())
		}
		ev.Time, ev.Duration = h.bus.Now(), since(start)
		h.bus.Publish(ev)
	}
	s, err := resolve()
	if err != nil {
		return err
	}
	ev.Repo = red.Replace(s.repo.String())
	ev.Upstream, ev.Digest, ev.MediaType = s.Upstream.String(), s.Digest.String(), string(s.MediaType)
	ev.Platforms, ev.Cached, ev.Status = s.Platforms, s.Cached, http.StatusOK
	if r.Method == http.MethodGet { // a HEAD names no blobs to come
		ev.Config = configOf(s.Manifest)
		h.sizes.record(s.Manifest)
	}
	hd := w.Header()
	hd.Set("Content-Type", string(s.MediaType))
	hd.Set("Content-Length", strconv.Itoa(len(s.Bytes)))
	hd.Set("Docker-Content-Digest", s.Digest.String())
	hd.Set("Etag", `"`+s.Digest.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(s.Bytes)
	}
	return nil
}

type servedManifest struct {
	proxy.Served
	repo proxy.Repo
}

func (h *Registry) resolveManifest(r *http.Request, rt route) (servedManifest, error) {
	repo, err := rt.repo(h.defaultRegistry)
	if err != nil {
		return servedManifest{}, err
	}
	ref, err := proxy.ParseRef(rt.ref)
	if err != nil {
		return servedManifest{}, err
	}
	s, err := h.rw.Get(r.Context(), repo, ref)
	if err != nil {
		return servedManifest{}, err
	}
	return h.forClient(r, repo, ref, s)
}

// forClient gives a client that cannot read an index, and asked by tag,
// the linux/amd64 image of the index s, as distribution does for clients
// without manifest-list support. Not when it asked for a digest: it checks
// the answer against it.
func (h *Registry) forClient(r *http.Request, repo proxy.Repo, ref proxy.Ref, s proxy.Served) (servedManifest, error) {
	if !ref.IsDigest() && s.MediaType.IsIndex() && !acceptsIndex(r.Header.Values("Accept")) {
		d, err := platformChild(s.Bytes, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err != nil {
			return servedManifest{}, err
		}
		if s, err = h.rw.Get(r.Context(), repo, proxy.Ref{Digest: d}); err != nil {
			return servedManifest{}, err
		}
	}
	return servedManifest{Served: s, repo: repo}, nil
}

// acceptsIndex reports whether an Accept header admits an index. No header
// at all (curl, scripts) admits anything.
func acceptsIndex(accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		for _, part := range strings.Split(a, ",") {
			mt := strings.TrimSpace(strings.Split(part, ";")[0])
			switch types.MediaType(mt) {
			case types.OCIImageIndex, types.DockerManifestList, "*/*":
				return true
			}
		}
	}
	return false
}

func platformChild(index []byte, want v1.Platform) (v1.Hash, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(index, &idx); err != nil {
		return v1.Hash{}, fmt.Errorf("decode index: %w", err)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.Satisfies(want) {
			return m.Digest, nil
		}
	}
	return v1.Hash{}, newError(http.StatusNotFound, codeManifestUnknown,
		"the image is an index with no "+want.String()+" manifest, and the client does not accept indexes")
}

// configOf is the config digest of an image manifest, for the event: the
// dashboard shows it, and tells the config from other blobs by it.
func configOf(m proxy.Manifest) string {
	if m.MediaType != types.OCIManifestSchema1 && m.MediaType != types.DockerManifestSchema2 {
		return ""
	}
	var v struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if json.Unmarshal(m.Bytes, &v) != nil {
		return ""
	}
	return v.Config.Digest
}
