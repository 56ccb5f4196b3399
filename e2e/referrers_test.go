package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ---------------------------------------------------------------------------
// OCI 1.1 referrers, as the distribution spec's conformance suite checks
// them (its content discovery tests), for the digests tower-reg made.
//
// The spec's suite checks what a referrers list holds only for fixtures it
// pushes through the registry under test, which a read-only proxy cannot
// take; run read-only (TestOCIConformance) it checks the answer's form
// alone. These are its referrers checks, with the fixtures pushed upstream
// and the questions asked through the daemon.

const (
	refSigType   = "application/vnd.e2e.signature" // in the artifactType field
	refSBOMType  = "application/vnd.e2e.sbom"      // as the config's media type
	refNoteKey   = "org.e2e.note"
	emptyJSON    = "{}"
	emptyJSONTyp = "application/vnd.oci.empty.v1+json"
)

// rawManifest is a manifest pushed as its bytes.
type rawManifest struct{ raw []byte }

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// referrer is an OCI 1.1 artifact manifest about subject.
type referrer struct {
	raw          []byte
	digest       v1.Hash
	artifactType string
	note         string
}

// pushReferrer pushes an artifact about subject to repo, its blobs first.
// artifactType set, it is the manifest's artifactType field and the config
// is the empty JSON; else configType is the config's media type, which the
// spec makes the artifact type. ggcr's push keeps the referrers tag schema
// (`sha256-<hex>`) up to date, as distribution 2.8 has no referrers API.
func pushReferrer(tb testing.TB, repo name.Repository, subject v1.Descriptor, artifactType, configType, note string) referrer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if configType == "" {
		configType = emptyJSONTyp
	}
	cfg := static.NewLayer([]byte(emptyJSON), types.MediaType(configType))
	payload := static.NewLayer([]byte(note), "application/vnd.e2e.payload")
	var descs []v1.Descriptor
	for _, l := range []v1.Layer{cfg, payload} {
		if err := remote.WriteLayer(repo, l, remote.WithContext(ctx)); err != nil {
			tb.Fatalf("push a blob of %s: %v", note, err)
		}
		d, err := partial.Descriptor(l)
		if err != nil {
			tb.Fatal(err)
		}
		descs = append(descs, *d)
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"config":        descs[0],
		"layers":        descs[1:],
		"subject":       subject,
		"annotations":   map[string]string{refNoteKey: note},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	raw, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Put(repo.Digest(d.String()), rawManifest{raw}, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("push the artifact %s: %v", note, err)
	}
	at := artifactType
	if at == "" {
		at = configType
	}
	return referrer{raw: raw, digest: d, artifactType: at, note: note}
}

func descriptorOf(tb testing.TB, x partial.Describable) v1.Descriptor {
	tb.Helper()
	d, err := partial.Descriptor(x)
	if err != nil {
		tb.Fatal(err)
	}
	return *d
}

// proxyDigest is the digest the daemon serves for repo's tag.
func proxyDigest(tb testing.TB, d *towerreg, repo, tag string) v1.Hash {
	tb.Helper()
	resp, body := do(tb, http.MethodHead, d.url("/v2/"+repo+"/manifests/"+tag))
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("HEAD %s:%s: %s %s", repo, tag, resp.Status, body)
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		tb.Fatalf("HEAD %s:%s: Docker-Content-Digest: %v", repo, tag, err)
	}
	return h
}

// refFixture is an upstream (distribution 2.8: the tag schema, no
// referrers API) holding an image and an index with referrers, and a
// daemon in front of it, with the digests the daemon made of them.
type refFixture struct {
	u    *upstream
	d    *towerreg
	path string // the repository through the daemon

	// Upstream: the image, the index, its amd64 child, and a subject that
	// was never pushed.
	echo, multi, amd64, missing v1.Descriptor
	// The referrers put upstream: of the image, the index, the child,
	// and the missing subject.
	sig, sbom, idxSig, amdSBOM, orphan referrer

	// The daemon's rewritten image, index and amd64 child of that index.
	img, idx, child v1.Hash
}

const (
	refRepo     = "test/refs"
	refImageTag = "img"
	refIndexTag = "multi"
)

// startRefFixture pushes the test images and their referrers upstream,
// starts a daemon and asks it for its digests of them.
func startRefFixture(t *testing.T) *refFixture {
	t.Helper()
	fx := testImages(t)
	f := &refFixture{u: startUpstream(t)}
	f.u.push(t, refRepo+":"+refImageTag, fx.Echo)
	f.u.pushIndex(t, refRepo+":"+refIndexTag, fx.Multi)
	upRepo := f.u.tag(t, refRepo+":"+refImageTag).Context()

	f.echo, f.multi, f.amd64 = descriptorOf(t, fx.Echo), descriptorOf(t, fx.Multi), descriptorOf(t, fx.MultiAMD64)
	f.missing = v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 2}
	f.missing.Digest, _, _ = v1.SHA256(strings.NewReader("no such manifest"))
	f.sig = pushReferrer(t, upRepo, f.echo, refSigType, "", "echo signed")
	f.sbom = pushReferrer(t, upRepo, f.echo, "", refSBOMType, "echo packages")
	f.idxSig = pushReferrer(t, upRepo, f.multi, refSigType, "", "index signed")
	f.amdSBOM = pushReferrer(t, upRepo, f.amd64, "", refSBOMType, "amd64 packages")
	f.orphan = pushReferrer(t, upRepo, f.missing, refSigType, "", "signs nothing here")

	f.d = startDaemon(t)
	f.path = viaProxy(f.u.Host, refRepo)
	f.img, f.idx = proxyDigest(t, f.d, f.path, refImageTag), proxyDigest(t, f.d, f.path, refIndexTag)
	if f.img == f.echo.Digest || f.idx == f.multi.Digest {
		t.Fatal("the daemon rewrote nothing")
	}
	resp, body := do(t, http.MethodGet, f.d.url("/v2/"+f.path+"/manifests/"+f.idx.String()))
	im, err := v1.ParseIndexManifest(bytes.NewReader(body))
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("the rewritten index: %s %v", resp.Status, err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "amd64" {
			f.child = m.Digest
		}
	}
	if f.child == (v1.Hash{}) || f.child == f.amd64.Digest {
		t.Fatalf("no rewritten amd64 child in the rewritten index: %+v", im.Manifests)
	}
	return f
}

// TestProxyReferrersConformance: the referrers API through the daemon, on
// distribution 2.8 (no referrers API: the daemon reads the tag schema), for
// the upstream's digests and for tower-reg's own: a rewritten image, a
// rewritten index and a rewritten platform manifest of that index answer
// with the referrers of the upstream digest they were made from. Each entry
// is the spec's descriptor (media type, size, artifactType from the field
// or the config, the manifest's annotations); artifactType filters and says
// so; an unknown digest is an empty index, a referrer to a subject that
// does not exist is listed all the same (the spec's "missing manifest"),
// and an invalid digest is a 400.
func TestProxyReferrersConformance(t *testing.T) {
	f := startRefFixture(t)
	d, path := f.d, f.path
	img, idx, child := f.img, f.idx, f.child
	sig, sbom, idxSig, amdSBOM, orphan := f.sig, f.sbom, f.idxSig, f.amdSBOM, f.orphan
	all := []referrer{sig, sbom, idxSig, amdSBOM, orphan}
	unknown, _, _ := v1.SHA256(strings.NewReader("never pushed anywhere"))

	tests := []struct {
		name     string
		subject  v1.Hash
		query    string
		want     []referrer
		filtered bool
	}{
		{"upstream image", f.echo.Digest, "", []referrer{sig, sbom}, false},
		{"rewritten image", img, "", []referrer{sig, sbom}, false},
		{"rewritten image, artifactType from the field", img, "?artifactType=" + refSigType, []referrer{sig}, true},
		{"rewritten image, artifactType from the config", img, "?artifactType=" + refSBOMType, []referrer{sbom}, true},
		{"rewritten image, filtered to nothing", img, "?artifactType=application/vnd.e2e.none", nil, true},
		{"rewritten index", idx, "", []referrer{idxSig}, false},
		{"rewritten platform manifest of the index", child, "", []referrer{amdSBOM}, false},
		{"unknown digest", unknown, "", nil, false},
		{"missing subject with a referrer", f.missing.Digest, "", []referrer{orphan}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, d.url("/v2/"+path+"/referrers/"+tt.subject.String()+tt.query))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %s", resp.Status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
				t.Errorf("Content-Type %q, want %s", ct, types.OCIImageIndex)
			}
			if h := resp.Header.Get("OCI-Filters-Applied"); (h == "artifactType") != tt.filtered {
				t.Errorf("OCI-Filters-Applied %q; asked to filter: %v", h, tt.filtered)
			}
			got, err := v1.ParseIndexManifest(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("the answer is no OCI index: %v: %s", err, body)
			}
			if got.SchemaVersion != 2 || got.MediaType != types.OCIImageIndex {
				t.Errorf("schemaVersion %d mediaType %q", got.SchemaVersion, got.MediaType)
			}
			checkReferrers(t, got.Manifests, tt.want)
		})
	}

	// The spec: a request that is invalid, such as a digest of invalid
	// syntax, MUST be a 400 (and never a 404, with the API served).
	for _, bad := range []string{"sha256:xyz", "not-a-digest"} {
		resp, body := do(t, http.MethodGet, d.url("/v2/"+path+"/referrers/"+bad))
		checkOCIError(t, http.MethodGet, resp, body, http.StatusBadRequest, "DIGEST_INVALID")
	}

	// A client: ggcr's Referrers, which reads the API's answer.
	ref, err := name.NewDigest(d.ref(path)+"@"+img.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := remote.Referrers(ref, remote.WithFilter("artifactType", refSBOMType))
	if err != nil {
		t.Fatalf("ggcr Referrers through the daemon: %v", err)
	}
	rim, err := ri.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	checkReferrers(t, rim.Manifests, []referrer{sbom})

	// Each referrer is served by its digest as it is: never rewritten.
	for _, r := range all {
		resp, body := do(t, http.MethodGet, d.url("/v2/"+path+"/manifests/"+r.digest.String()))
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, r.raw) {
			t.Errorf("referrer %q by digest: %s, %d bytes; want it unchanged (%d bytes)", r.note, resp.Status, len(body), len(r.raw))
		}
	}
}

// checkReferrers compares a referrers list with want, in any order: each
// descriptor as the spec has it.
func checkReferrers(tb testing.TB, got []v1.Descriptor, want []referrer) {
	tb.Helper()
	byDigest := map[v1.Hash]referrer{}
	for _, r := range want {
		byDigest[r.digest] = r
	}
	var gotDigests, wantDigests []string
	for _, g := range got {
		gotDigests = append(gotDigests, g.Digest.String())
		r, ok := byDigest[g.Digest]
		if !ok {
			continue
		}
		if g.MediaType != types.OCIManifestSchema1 || g.Size != int64(len(r.raw)) || g.ArtifactType != r.artifactType {
			tb.Errorf("%q: mediaType %q size %d artifactType %q, want %s %d %q",
				r.note, g.MediaType, g.Size, g.ArtifactType, types.OCIManifestSchema1, len(r.raw), r.artifactType)
		}
		if want := map[string]string{refNoteKey: r.note}; !maps.Equal(g.Annotations, want) {
			tb.Errorf("%q: annotations %v, want %v", r.note, g.Annotations, want)
		}
	}
	for _, r := range want {
		wantDigests = append(wantDigests, r.digest.String())
	}
	slices.Sort(gotDigests)
	slices.Sort(wantDigests)
	if !slices.Equal(gotDigests, wantDigests) {
		tb.Errorf("referrers %v, want %v", gotDigests, wantDigests)
	}
}
