package daemon_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// countFiles counts the regular files under dir.
func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// putManifest writes v to the upstream as a manifest of repo under ref
// ("" for its digest) and returns its descriptor.
func (e *env) putManifest(t *testing.T, repo, ref string, mt types.MediaType, v any) v1.Descriptor {
	t.Helper()
	return regtest.PutManifest(t, e.upstream.URL, repo, ref, mt, v)
}

// pushAttestedIndex tags as repo:latest an index of img for linux/amd64
// and n attestation-like children (unknown/unknown images, marked as
// BuildKit marks attestations), and returns the children's digests.
func (e *env) pushAttestedIndex(t *testing.T, repo string, img v1.Image, n int) []v1.Hash {
	t.Helper()
	imgDigest := e.push(t, repo, "image", img)
	mf, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: mt, Digest: imgDigest, Size: int64(len(mf)), Platform: &v1.Platform{OS: "linux", Architecture: "amd64"},
	}}}
	var children []v1.Hash
	for i := range n {
		blob := func(mt types.MediaType, s string) v1.Descriptor {
			d, size, _ := v1.SHA256(strings.NewReader(s))
			return v1.Descriptor{MediaType: mt, Digest: d, Size: size}
		}
		c := e.putManifest(t, repo, "", types.OCIManifestSchema1, v1.Manifest{
			SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: blob(types.OCIConfigJSON, "{}"), Layers: []v1.Descriptor{blob(types.OCILayer, fmt.Sprint(i))},
		})
		c.Platform = &v1.Platform{OS: "unknown", Architecture: "unknown"}
		c.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": imgDigest.String()}
		idx.Manifests = append(idx.Manifests, c)
		children = append(children, c.Digest)
	}
	e.putManifest(t, repo, "latest", types.OCIImageIndex, idx)
	return children
}

// TestRecordsCollected: the records of pulls count toward cache_max_bytes
// and GC collects them with the blobs; the daemon then serves a pull by
// tag, and by the digests it made, as before.
func TestRecordsCollected(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	children := e.pushAttestedIndex(t, "test/idx", base, 2000)
	store := filepath.Join(e.cacheDir, "store")
	records := filepath.Join(store, "records")
	recordsBefore := countFiles(t, records)

	tagRef := mustRef(t, e.through("test/idx")+":latest")
	idx, err := remote.Index(tagRef)
	if err != nil {
		t.Fatal(err)
	}
	made, _ := idx.Digest()
	if n := countFiles(t, records) - recordsBefore; n > 20 {
		t.Fatalf("one pull of an index of 2,000 children wrote %d records, want a few", n)
	}

	// A day later, the daemon restarts with a cache limit of a byte: GC
	// takes everything but the current layers, records included.
	ageStore(t, store, 24*time.Hour)
	e.cfg.CacheMaxBytes = 1
	e.start(t, nil)
	e.d.WaitIdle()
	if n := countFiles(t, records); n != 0 {
		t.Errorf("%d records left after a GC to 1 byte, want none", n)
	}
	if n, want := countFiles(t, filepath.Join(store, "blobs")), len(e.d.Generation().Set.Platforms)+1; n > want {
		t.Errorf("%d blobs left after a GC to 1 byte, want at most the %d layers", n, want)
	}

	// The pull by tag makes the same index again, and the digests it made
	// are served: the index, its image, and a child it left unchanged.
	idx, err = remote.Index(mustRef(t, e.through("test/idx")+":latest"))
	if err != nil {
		t.Fatalf("pull by tag after GC: %v", err)
	}
	if d, _ := idx.Digest(); d != made {
		t.Fatalf("pull by tag after GC: %s, want %s again (same upstream, same layer)", d, made)
	}
	byDigest, err := remote.Index(mustRef(t, e.through("test/idx")+"@"+made.String()))
	if err != nil {
		t.Fatalf("pull by the digest it made: %v", err)
	}
	im, err := byDigest.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(mustRef(t, e.through("test/idx")+"@"+im.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatalf("pull of the rewritten image by digest: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, e.layerFor("amd64"), base, img)
	if _, err := remote.Get(mustRef(t, e.through("test/idx")+"@"+children[len(children)-1].String())); err != nil {
		t.Errorf("a child the index left unchanged, by digest: %v", err)
	}
}
