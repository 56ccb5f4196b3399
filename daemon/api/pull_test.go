package api_test

// Pulls through the registry handler over the real proxy, by a real
// client (ggcr's remote), from an in-memory upstream: moved down from
// daemon/daemon_test.go, where they went through daemon.New.

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

func TestPullImage(t *testing.T) {
	tests := []struct {
		name string
		arch string
		mt   types.MediaType
		cfg  v1.Config
	}{
		{"docker", "amd64", types.DockerManifestSchema2, v1.Config{Entrypoint: []string{"/bin/app", "--flag with space"}, Cmd: []string{"serve"}, Env: []string{"A=1"}}},
		{"oci", "amd64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}, WorkingDir: "/work", User: "1000"}},
		{"no entrypoint no cmd", "amd64", types.OCIManifestSchema1, v1.Config{}},
		{"arm64 gets the arm64 entry", "arm64", types.OCIManifestSchema1, v1.Config{Entrypoint: []string{"/app"}}},
		{"no payload for s390x: common files, entrypoint kept", "s390x", types.OCIManifestSchema1, v1.Config{Entrypoint: []string{"/app"}}},
	}
	e := newStack(t, regtest.Registry())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := regtest.RandomImage(t, tt.arch, tt.mt, tt.cfg)
			e.push(t, "test/img", "latest", base)

			got, err := remote.Image(regtest.MustRef(t, e.through("test/img")+":latest"))
			if err != nil {
				t.Fatalf("pull through proxy: %v", err)
			}
			// validate.Image downloads every blob and checks every digest,
			// diff_id and size, as a client would.
			if err := validate.Image(got); err != nil {
				t.Fatalf("rewritten image is invalid: %v", err)
			}
			regtest.CheckInjected(t, e.layerFor(tt.arch), base, got)
			mt, _ := got.MediaType()
			if mt != tt.mt {
				t.Fatalf("media type %s, want %s", mt, tt.mt)
			}
		})
	}
}

func TestPullIndex(t *testing.T) {
	e := newStack(t, regtest.Registry())
	amd := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	arm := regtest.RandomImage(t, "arm64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	up := e.push(t, "test/multi", "latest", idx)

	e.count.Reset()
	got, err := remote.Index(regtest.MustRef(t, e.through("test/multi")+":latest"))
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if err := validate.Index(got); err != nil {
		t.Fatalf("rewritten index is invalid: %v", err)
	}
	d, _ := got.Digest()
	if d == up {
		t.Fatal("index digest unchanged: nothing was rewritten")
	}
	im, _ := got.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(im.Manifests))
	}
	for i, base := range []v1.Image{amd, arm} {
		img, err := got.Image(im.Manifests[i].Digest)
		if err != nil {
			t.Fatal(err)
		}
		regtest.CheckInjected(t, e.layerFor(im.Manifests[i].Platform.Architecture), base, img)
	}
	if a, b := e.layerFor("amd64").GzipDigest, e.layerFor("arm64").GzipDigest; a == b {
		t.Fatalf("amd64 and arm64 got the same layer %s: the overlays were not applied", a)
	}

	// A client that accepts no index gets the linux/amd64 image, as from
	// distribution, when it asks by tag; by digest it gets what it named.
	for _, tt := range []struct{ ref, want string }{
		{"latest", im.Manifests[0].Digest.String()},
		{d.String(), d.String()},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.proxy.URL+"/v2/"+regtest.PathHost(e.upstream)+"/test/multi/manifests/"+tt.ref, nil)
		req.Header.Set("Accept", string(types.OCIManifestSchema1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != 200 || got != tt.want {
			t.Errorf("GET %s without index in Accept: %d, digest %s; want %s", tt.ref, resp.StatusCode, got, tt.want)
		}
	}
}

// TestPullIndexSharedAndKeptChildren covers an index that lists one image
// for two platforms, each of which needs its own layer, and children that
// are kept as they are but must still be served by digest.
func TestPullIndexSharedAndKeptChildren(t *testing.T) {
	e := newStack(t, regtest.Registry())
	shared := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	unknown := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	nested := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: shared, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: shared, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: unknown, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}},
		mutate.IndexAddendum{Add: nested},
	)
	e.push(t, "test/shared", "latest", idx)

	got, err := remote.Index(regtest.MustRef(t, e.through("test/shared")+":latest"))
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 4 {
		t.Fatalf("%d manifests, want 4", len(im.Manifests))
	}
	if im.Manifests[0].Digest == im.Manifests[1].Digest {
		t.Fatal("amd64 and arm64 share one rewritten image: one of them has the other's layer")
	}
	for _, i := range []int{0, 1} {
		img, err := got.Image(im.Manifests[i].Digest)
		if err != nil {
			t.Fatal(err)
		}
		regtest.CheckInjected(t, e.layerFor(im.Manifests[i].Platform.Architecture), shared, img)
	}

	for i, want := range []remote.Taggable{unknown, nested} {
		d := im.Manifests[2+i].Digest
		wantDigest, _ := want.(interface{ Digest() (v1.Hash, error) }).Digest()
		if d != wantDigest {
			t.Errorf("kept child %d: digest %s, want the upstream %s", 2+i, d, wantDigest)
		}
		desc, err := remote.Get(regtest.MustRef(t, e.through("test/shared")+"@"+d.String()))
		if err != nil {
			t.Errorf("kept child %d by digest: %v", 2+i, err)
			continue
		}
		if desc.Digest != d {
			t.Errorf("kept child %d: served %s for %s", 2+i, desc.Digest, d)
		}
	}

	// Being listed unchanged in one repository's index does not make an
	// upstream image servable by digest in another.
	e.push(t, "test/other", "latest", unknown)
	if _, err := remote.Get(regtest.MustRef(t, e.through("test/other")+"@"+im.Manifests[2].Digest.String())); err == nil {
		t.Error("an upstream image digest was served unchanged in a repository whose index never listed it")
	}
}

func TestPullByUpstreamDigest(t *testing.T) {
	e := newStack(t, regtest.Registry())
	base := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	up := e.push(t, "test/img", "v1", base)

	_, err := remote.Image(regtest.MustRef(t, e.through("test/img")+"@"+up.String()))
	if err == nil || !strings.Contains(err.Error(), "sha256-"+up.Hex) {
		t.Fatalf("pull by upstream digest: err = %v, want a MANIFEST_UNKNOWN naming the tag form", err)
	}

	byTagForm, err := remote.Image(regtest.MustRef(t, e.through("test/img")+":sha256-"+up.Hex))
	if err != nil {
		t.Fatalf("pull by the tag form: %v", err)
	}
	regtest.CheckInjected(t, e.layerFor("amd64"), base, byTagForm)
	byTag, err := remote.Image(regtest.MustRef(t, e.through("test/img")+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := byTagForm.Digest()
	b, _ := byTag.Digest()
	if a != b {
		t.Fatalf("tag form gave %s, tag gave %s: same upstream digest must give the same rewrite", a, b)
	}
}
