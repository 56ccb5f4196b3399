package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	sigType  = "application/vnd.example.signature"
	sbomType = "application/vnd.example.sbom"
)

// artifact is an OCI 1.1 artifact manifest about subject: not an image (its
// config is no image config), so tower-reg must never rewrite it.
func artifact(t *testing.T, subject v1.Descriptor, artifactType, payload string) v1.Image {
	t.Helper()
	a := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(artifactType))
	a, err := mutate.Append(a, mutate.Addendum{Layer: static.NewLayer([]byte(payload), "application/vnd.example.payload")})
	if err != nil {
		t.Fatal(err)
	}
	return mutate.Subject(a, subject).(v1.Image)
}

// referrersFixture is an upstream repository with an image, an index with
// an attestation, and artifacts whose subjects are the image and the index.
type referrersFixture struct {
	image, index      v1.Hash // upstream digests
	sig, sbom, idxSig v1.Hash // the artifacts
}

func pushReferrers(t *testing.T, e *env) referrersFixture {
	t.Helper()
	var f referrersFixture
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	f.image = e.push(t, "test/ref", "img", img)
	att := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				"vnd.docker.reference.type":   "attestation-manifest",
				"vnd.docker.reference.digest": f.image.String(),
			}}},
	)
	f.index = e.push(t, "test/ref", "index", idx)
	imgDesc, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := partial.Descriptor(idx)
	if err != nil {
		t.Fatal(err)
	}
	f.sig = e.push(t, "test/ref", "sig", artifact(t, *imgDesc, sigType, "signed"))
	f.sbom = e.push(t, "test/ref", "sbom", artifact(t, *imgDesc, sbomType, "packages"))
	f.idxSig = e.push(t, "test/ref", "idxsig", artifact(t, *idxDesc, sigType, "index signed"))
	return f
}

// getReferrers asks the proxy for the referrers of d and returns the
// answer's digests.
func getReferrers(t *testing.T, e *env, d v1.Hash, query string) (*http.Response, []v1.Hash) {
	t.Helper()
	url := e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/ref/referrers/" + d.String() + query
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("referrers answer is no index: %v: %s", err, body)
	}
	var ds []v1.Hash
	for _, m := range im.Manifests {
		ds = append(ds, m.Digest)
	}
	slices.SortFunc(ds, func(a, b v1.Hash) int { return bytes.Compare([]byte(a.String()), []byte(b.String())) })
	return resp, ds
}

func sorted(ds ...v1.Hash) []v1.Hash {
	ds = slices.Clone(ds)
	slices.SortFunc(ds, func(a, b v1.Hash) int { return bytes.Compare([]byte(a.String()), []byte(b.String())) })
	return ds
}

// rewrittenDigest is the digest the proxy serves for a tag.
func rewrittenDigest(t *testing.T, e *env, tag string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(mustRef(t, e.through("test/ref")+":"+tag))
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}

// TestReferrers runs against an upstream with the referrers API and one
// without it, where ggcr's push stored the referrers tag schema's indexes.
func TestReferrers(t *testing.T) {
	for _, api := range []bool{true, false} {
		name := map[bool]string{true: "referrers API", false: "tag schema"}[api]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, registry.New(registry.Logger(quiet), registry.WithReferrersSupport(api)))
			f := pushReferrers(t, e)
			img, idx := rewrittenDigest(t, e, "img"), rewrittenDigest(t, e, "index")
			if img == f.image || idx == f.index {
				t.Fatal("nothing was rewritten")
			}
			none := f.sig // an artifact nothing refers to
			tests := []struct {
				name     string
				subject  v1.Hash
				query    string
				want     []v1.Hash
				filtered bool
			}{
				{"upstream image", f.image, "", sorted(f.sig, f.sbom), false},
				{"rewritten image", img, "", sorted(f.sig, f.sbom), false},
				{"rewritten index", idx, "", sorted(f.idxSig), false},
				{"upstream image, filtered", f.image, "?artifactType=" + sigType, sorted(f.sig), true},
				{"rewritten image, filtered", img, "?artifactType=" + sbomType, sorted(f.sbom), true},
				{"filtered to nothing", img, "?artifactType=application/none", nil, true},
				{"no referrers", none, "", nil, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, got := getReferrers(t, e, tt.subject, tt.query)
					if !slices.Equal(got, tt.want) {
						t.Errorf("referrers %v, want %v", got, tt.want)
					}
					if ct := resp.Header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
						t.Errorf("Content-Type %q", ct)
					}
					if h := resp.Header.Get("OCI-Filters-Applied"); (h == "artifactType") != tt.filtered {
						t.Errorf("OCI-Filters-Applied %q, filtered %v", h, tt.filtered)
					}
				})
			}
			// The rewritten index keeps its attestation as it was, pointing
			// at the upstream image (layer/README.md says why).
			ri, err := remote.Index(mustRef(t, e.through("test/ref")+"@"+idx.String()))
			if err != nil {
				t.Fatal(err)
			}
			im, err := ri.IndexManifest()
			if err != nil || len(im.Manifests) != 2 {
				t.Fatalf("rewritten index: %v, %v", im, err)
			}
			if a := im.Manifests[1]; a.Annotations["vnd.docker.reference.digest"] != f.image.String() || a.Digest == im.Manifests[0].Digest {
				t.Errorf("attestation entry %+v: want it unchanged, naming the upstream %s", a, f.image)
			}
			if _, err := remote.Get(mustRef(t, e.through("test/ref")+"@"+im.Manifests[1].Digest.String())); err != nil {
				t.Errorf("attestation by its upstream digest: %v", err)
			}
			// What the list names is fetched through the proxy as it is.
			desc, err := remote.Get(mustRef(t, e.through("test/ref")+"@"+f.sig.String()))
			if err != nil || desc.Digest != f.sig {
				t.Errorf("referrer by digest: %v, %v", desc, err)
			}
		})
	}
}

// TestReferrersTagServedAsIs pins the line between the tag form of an
// upstream digest and a referrers tag that the upstream really holds.
func TestReferrersTagServedAsIs(t *testing.T) {
	for _, api := range []bool{true, false} {
		name := map[bool]string{true: "no such tag: a pin", false: "a real tag: as it is"}[api]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, registry.New(registry.Logger(quiet), registry.WithReferrersSupport(api)))
			f := pushReferrers(t, e)
			tag := "sha256-" + f.image.Hex
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet,
				e.proxy.URL+"/v2/"+pathHost(e.upstream)+"/test/ref/manifests/"+tag, nil)
			req.Header.Set("Accept", string(types.OCIImageIndex)+", "+string(types.OCIManifestSchema1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tag, resp.StatusCode, body)
			}
			got := resp.Header.Get("Docker-Content-Digest")
			if api {
				// The upstream has no such tag: the pin of the image.
				if want := rewrittenDigest(t, e, "img"); got != want.String() {
					t.Fatalf("pin served %s, want the rewrite of the image %s", got, want)
				}
				return
			}
			up, err := remote.Get(mustRef(t, host(e.upstream)+"/test/ref:"+tag))
			if err != nil {
				t.Fatal(err)
			}
			if got != up.Digest.String() || !bytes.Equal(body, up.Manifest) {
				t.Fatalf("the upstream's tag %s: served %s %s, want it unchanged: %s", tag, got, body, up.Manifest)
			}
			var im struct {
				Manifests []v1.Descriptor `json:"manifests"`
			}
			if err := json.Unmarshal(body, &im); err != nil || len(im.Manifests) != 2 {
				t.Fatalf("the tag's index lists %d referrers (%v), want 2", len(im.Manifests), err)
			}
		})
	}
}

// TestTokenReferrers: a container token answers for its own image only.
func TestTokenReferrers(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet), registry.WithReferrersSupport(true)))
	f := pushReferrers(t, e)
	route := issueLocal(t, host(e.proxy), host(e.upstream)+"/test/ref:img")
	mine := rewrittenDigest(t, e, "img")
	tests := []struct {
		name    string
		subject v1.Hash
		status  int
	}{
		{"its image", mine, http.StatusOK},
		{"its upstream digest", f.image, http.StatusOK},
		{"another image of the repository", f.index, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(e.proxy.URL + "/v2/" + route + "/referrers/" + tt.subject.String())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == http.StatusOK && !bytes.Contains(body, []byte(f.sig.String())) {
				t.Errorf("the image's signature is not listed: %s", body)
			}
		})
	}
}

// TestReferrersRequests covers the route's methods and its argument.
func TestReferrersRequests(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet), registry.WithReferrersSupport(true)))
	f := pushReferrers(t, e)
	base := e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/ref/referrers/"
	tests := []struct {
		method, ref string
		status      int
		body        bool
	}{
		{http.MethodHead, f.image.String(), http.StatusOK, false},
		{http.MethodGet, "latest", http.StatusBadRequest, true},
		{http.MethodDelete, f.image.String(), http.StatusMethodNotAllowed, true},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.ref, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, base+tt.ref, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (len(body) > 0) != tt.body {
				t.Fatalf("%d with %d body bytes, want %d (body %v): %s", resp.StatusCode, len(body), tt.status, tt.body, body)
			}
		})
	}
}
