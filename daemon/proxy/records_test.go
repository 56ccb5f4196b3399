package proxy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/internal/regtest"
	"github.com/tower-reg/tower-reg/layer"
)

// upstream is an in-memory registry the test writes raw manifests to.
type upstream struct {
	t   *testing.T
	srv *httptest.Server
}

func newUpstream(t *testing.T) *upstream {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &upstream{t: t, srv: srv}
}

func (u *upstream) repo(path string) proxy.Repo {
	r, err := proxy.ParseRepo(strings.TrimPrefix(u.srv.URL, "http://")+"/"+path, "index.docker.io")
	if err != nil {
		u.t.Fatal(err)
	}
	return r
}

// put writes v as a manifest of repo under ref (a tag, or "" for its
// digest) and returns its descriptor.
func (u *upstream) put(path, ref string, mt types.MediaType, v any) v1.Descriptor {
	u.t.Helper()
	return regtest.PutManifest(u.t, u.srv.URL, path, ref, mt, v)
}

func blobDesc(mt types.MediaType, s string) v1.Descriptor {
	d, n, _ := v1.SHA256(strings.NewReader(s))
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}
}

// attestedIndex writes to path an index of one linux/amd64 image and n
// attestation-like manifests, tagged latest, and returns their digests.
// They are unknown/unknown images marked as BuildKit marks attestations,
// but with a tar layer, not an in-toto one: the proxy serves them by
// digest only because a rewritten index listed them (an in-toto "image"
// is no image, and is served by digest anyway).
func (u *upstream) attestedIndex(path string, n int) []v1.Hash {
	u.t.Helper()
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
	cfgDesc := blobDesc(types.OCIConfigJSON, cfg)
	u.pushBlob(path, cfg)
	img := u.put(path, "", types.OCIManifestSchema1, v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfgDesc, Layers: []v1.Descriptor{},
	})
	img.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{img}}
	var atts []v1.Hash
	for i := range n {
		a := u.put(path, "", types.OCIManifestSchema1, v1.Manifest{
			SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config:      blobDesc(types.OCIConfigJSON, "{}"),
			Layers:      []v1.Descriptor{blobDesc(types.OCILayer, fmt.Sprint(i))},
			Annotations: map[string]string{"n": fmt.Sprint(i)},
		})
		a.Platform = &v1.Platform{OS: "unknown", Architecture: "unknown"}
		a.Annotations = map[string]string{
			"vnd.docker.reference.type":   "attestation-manifest",
			"vnd.docker.reference.digest": img.Digest.String(),
		}
		idx.Manifests = append(idx.Manifests, a)
		atts = append(atts, a.Digest)
	}
	u.put(path, "latest", types.OCIImageIndex, idx)
	return atts
}

func (u *upstream) pushBlob(path, s string) {
	u.t.Helper()
	d, _, _ := v1.SHA256(strings.NewReader(s))
	resp, err := http.Post(u.srv.URL+"/v2/"+path+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", strings.NewReader(s))
	if err != nil {
		u.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		u.t.Fatalf("push blob: %s", resp.Status)
	}
}

// newRewriting is a Rewriting over a fresh store with a one-file layer.
func newRewriting(t *testing.T) (*proxy.Rewriting, *store.Store) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set, err := layer.PackSet(t.Context(), fstest.MapFS{"f": {Data: []byte("x"), Mode: 0o644}}, st)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := proxy.NewGeneration(1, set)
	if err != nil {
		t.Fatal(err)
	}
	up := proxy.NewUpstream(proxy.Options{Transport: http.DefaultTransport})
	return proxy.NewRewriting(up, st, proxy.StaticLayers{Gen: gen}), st
}

// entries counts the files and directories under the store (tmp aside).
func entries(t *testing.T, st *store.Store) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(st.Root(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return fs.SkipDir
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// maxFilesPerIndexPull is the bound of recordPassed's comment for an index
// of one platform image, with one layer appended: 6 + 1×(5+1), and the
// link, manifest and rewrite directories of a fresh store.
const maxFilesPerIndexPull = 6 + (5 + 1) + 3

// TestIndexPassThroughFiles: one GET of an index with 2,000 attestation
// children writes a small fixed number of files, not one per child; each
// child is still served by its upstream digest in that repository only,
// also after GC collected the records and a pull by tag made them again.
func TestIndexPassThroughFiles(t *testing.T) {
	u := newUpstream(t)
	atts := u.attestedIndex("test/idx", 2000)
	rw, st := newRewriting(t)
	repo := u.repo("test/idx")

	before := entries(t, st)
	if _, err := rw.Get(t.Context(), repo, proxy.Ref{Tag: "latest"}); err != nil {
		t.Fatal(err)
	}
	if n := entries(t, st) - before; n > maxFilesPerIndexPull {
		t.Fatalf("one index pull made %d files and directories in the store, want at most %d", n, maxFilesPerIndexPull)
	}
	wantServed(t, rw, repo, atts)

	// Listed in test/idx's index does not make it servable in test/other.
	u.put("test/other", "", types.OCIManifestSchema1, json.RawMessage(mustGetRaw(t, rw, repo, atts[7])))
	var ude *proxy.UpstreamDigestError
	if _, err := rw.Get(t.Context(), u.repo("test/other"), proxy.Ref{Digest: atts[7]}); !errors.As(err, &ude) {
		t.Errorf("a child of test/idx by digest in test/other: %v, want an UpstreamDigestError", err)
	}

	// A warm pull, served from memory; then GC takes everything but the
	// layers: the index and its records go together, and a child is no
	// longer served (no index lists it).
	if _, err := rw.Get(t.Context(), repo, proxy.Ref{Tag: "latest"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GC(t.Context(), 0, 0, func(h v1.Hash) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Get(t.Context(), repo, proxy.Ref{Digest: atts[0]}); !errors.As(err, &ude) {
		t.Errorf("a child by digest once its index was collected: %v, want an UpstreamDigestError", err)
	}
	// A pull by tag makes the index and its records again, although the
	// rewrite was in memory.
	if _, err := rw.Get(t.Context(), repo, proxy.Ref{Tag: "latest"}); err != nil {
		t.Fatal(err)
	}
	wantServed(t, rw, repo, atts)
}

// wantServed checks that the first, a middle and the last child are served
// unchanged by digest.
func wantServed(t *testing.T, rw *proxy.Rewriting, repo proxy.Repo, atts []v1.Hash) {
	t.Helper()
	for _, d := range []v1.Hash{atts[0], atts[len(atts)/2], atts[len(atts)-1]} {
		s, err := rw.Get(t.Context(), repo, proxy.Ref{Digest: d})
		if err != nil {
			t.Errorf("child %s by digest: %v", d, err)
			continue
		}
		if s.Digest != d {
			t.Errorf("child %s served as %s", d, s.Digest)
		}
	}
}

func mustGetRaw(t *testing.T, rw *proxy.Rewriting, repo proxy.Repo, d v1.Hash) []byte {
	t.Helper()
	s, err := rw.Get(t.Context(), repo, proxy.Ref{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	return s.Bytes
}
