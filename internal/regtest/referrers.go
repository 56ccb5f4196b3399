package regtest

import (
	"bytes"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The artifact types of the referrers fixture.
const (
	SigType  = "application/vnd.example.signature"
	SbomType = "application/vnd.example.sbom"
)

// Artifact is an OCI 1.1 artifact manifest about subject: not an image
// (its config is no image config), so tower-reg must never rewrite it.
func Artifact(t testing.TB, subject v1.Descriptor, artifactType, payload string) v1.Image {
	t.Helper()
	a := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(artifactType))
	a, err := mutate.Append(a, mutate.Addendum{Layer: static.NewLayer([]byte(payload), "application/vnd.example.payload")})
	if err != nil {
		t.Fatal(err)
	}
	return mutate.Subject(a, subject).(v1.Image)
}

// ReferrersFixture is an upstream repository with an image, an index with
// an attestation, and artifacts whose subjects are the image and the index.
type ReferrersFixture struct {
	Image, Index      v1.Hash // upstream digests
	Sig, Sbom, IdxSig v1.Hash // the artifacts
}

// PushReferrers pushes the fixture to test/ref on the registry at host:
// the image tagged img, the index tagged index.
func PushReferrers(t testing.TB, host string) ReferrersFixture {
	t.Helper()
	push := func(tag string, img remote.Taggable) v1.Hash { return Push(t, host, "test/ref", tag, img) }
	var f ReferrersFixture
	img := RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}})
	f.Image = push("img", img)
	att := RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				"vnd.docker.reference.type":   "attestation-manifest",
				"vnd.docker.reference.digest": f.Image.String(),
			}}},
	)
	f.Index = push("index", idx)
	imgDesc, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := partial.Descriptor(idx)
	if err != nil {
		t.Fatal(err)
	}
	f.Sig = push("sig", Artifact(t, *imgDesc, SigType, "signed"))
	f.Sbom = push("sbom", Artifact(t, *imgDesc, SbomType, "packages"))
	f.IdxSig = push("idxsig", Artifact(t, *idxDesc, SigType, "index signed"))
	return f
}

// Sorted is ds in digest order.
func Sorted(ds ...v1.Hash) []v1.Hash {
	ds = slices.Clone(ds)
	slices.SortFunc(ds, func(a, b v1.Hash) int { return bytes.Compare([]byte(a.String()), []byte(b.String())) })
	return ds
}

// HeadDigest is the digest a registry serves for ref, by a HEAD.
func HeadDigest(t testing.TB, ref string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(MustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}
