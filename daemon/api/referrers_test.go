package api_test

// The referrers API through the registry handler over the real proxy:
// moved down from daemon/referrers_test.go, where it went through
// daemon.New (a container token's referrers stay there).

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

// getReferrers asks the proxy for the referrers of d and returns the
// answer's digests.
func getReferrers(t *testing.T, e *stack, d v1.Hash, query string) (*http.Response, []v1.Hash) {
	t.Helper()
	url := e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/ref/referrers/" + d.String() + query
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

// TestReferrers runs against an upstream with the referrers API and one
// without it, where ggcr's push stored the referrers tag schema's indexes.
func TestReferrers(t *testing.T) {
	for _, api := range []bool{true, false} {
		name := map[bool]string{true: "referrers API", false: "tag schema"}[api]
		t.Run(name, func(t *testing.T) {
			e := newStack(t, regtest.Registry(registry.WithReferrersSupport(api)))
			f := regtest.PushReferrers(t, regtest.Host(e.upstream))
			img, idx := regtest.HeadDigest(t, e.through("test/ref")+":img"), regtest.HeadDigest(t, e.through("test/ref")+":index")
			if img == f.Image || idx == f.Index {
				t.Fatal("nothing was rewritten")
			}
			none := f.Sig // an artifact nothing refers to
			tests := []struct {
				name     string
				subject  v1.Hash
				query    string
				want     []v1.Hash
				filtered bool
			}{
				{"upstream image", f.Image, "", regtest.Sorted(f.Sig, f.Sbom), false},
				{"rewritten image", img, "", regtest.Sorted(f.Sig, f.Sbom), false},
				{"rewritten index", idx, "", regtest.Sorted(f.IdxSig), false},
				{"upstream image, filtered", f.Image, "?artifactType=" + regtest.SigType, regtest.Sorted(f.Sig), true},
				{"rewritten image, filtered", img, "?artifactType=" + regtest.SbomType, regtest.Sorted(f.Sbom), true},
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
			ri, err := remote.Index(regtest.MustRef(t, e.through("test/ref")+"@"+idx.String()))
			if err != nil {
				t.Fatal(err)
			}
			im, err := ri.IndexManifest()
			if err != nil || len(im.Manifests) != 2 {
				t.Fatalf("rewritten index: %v, %v", im, err)
			}
			if a := im.Manifests[1]; a.Annotations["vnd.docker.reference.digest"] != f.Image.String() || a.Digest == im.Manifests[0].Digest {
				t.Errorf("attestation entry %+v: want it unchanged, naming the upstream %s", a, f.Image)
			}
			if _, err := remote.Get(regtest.MustRef(t, e.through("test/ref")+"@"+im.Manifests[1].Digest.String())); err != nil {
				t.Errorf("attestation by its upstream digest: %v", err)
			}
			// What the list names is fetched through the proxy as it is.
			desc, err := remote.Get(regtest.MustRef(t, e.through("test/ref")+"@"+f.Sig.String()))
			if err != nil || desc.Digest != f.Sig {
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
			e := newStack(t, regtest.Registry(registry.WithReferrersSupport(api)))
			f := regtest.PushReferrers(t, regtest.Host(e.upstream))
			tag := "sha256-" + f.Image.Hex
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet,
				e.proxy.URL+"/v2/"+regtest.PathHost(e.upstream)+"/test/ref/manifests/"+tag, nil)
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
				if want := regtest.HeadDigest(t, e.through("test/ref")+":img"); got != want.String() {
					t.Fatalf("pin served %s, want the rewrite of the image %s", got, want)
				}
				return
			}
			up, err := remote.Get(regtest.MustRef(t, regtest.Host(e.upstream)+"/test/ref:"+tag))
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

// TestReferrersRequests covers the route's methods and its argument.
func TestReferrersRequests(t *testing.T) {
	e := newStack(t, regtest.Registry(registry.WithReferrersSupport(true)))
	f := regtest.PushReferrers(t, regtest.Host(e.upstream))
	base := e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/ref/referrers/"
	tests := []struct {
		method, ref string
		status      int
		body        bool
	}{
		{http.MethodHead, f.Image.String(), http.StatusOK, false},
		{http.MethodGet, "latest", http.StatusBadRequest, true},
		{http.MethodDelete, f.Image.String(), http.StatusMethodNotAllowed, true},
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
