package e2e

// regclient's regctl through the proxy: the OCI 1.1 referrers API. The
// upstream (distribution 2.8) has no referrers API, so regctl stores
// referrers there under the referrers tag schema (sha256-<hex>); the
// proxy must answer its own digests with the referrers of the upstream
// digests they were made from, and regctl's copy and list must find the
// same artifacts through it as straight from the upstream.

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Artifact types of the referrers the test puts upstream.
const (
	sbomType = "application/vnd.towerreg.e2e.sbom"
	sigType  = "application/vnd.towerreg.e2e.signature"
)

// regctl runs regctl with its configuration (and the Docker one it reads)
// in the test's temp dir, every registry over plain HTTP.
type regctl struct {
	bin string
	env []string
}

func newRegctl(tb testing.TB, hosts ...string) *regctl {
	tb.Helper()
	home := tb.TempDir()
	r := &regctl{bin: need(tb, "regctl"), env: append(os.Environ(),
		"HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))}
	for _, h := range hosts {
		r.run(tb, "registry", "set", "--tls", "disabled", h)
	}
	return r
}

// run runs regctl with args and fails the test on error.
func (r *regctl) run(tb testing.TB, args ...string) string {
	tb.Helper()
	return mustRun(tb, r.env, r.bin, args...)
}

// putReferrer pushes a one-file artifact of artifactType whose subject is
// subject, and returns the artifact manifest's digest.
func (r *regctl) putReferrer(tb testing.TB, subject, artifactType, content string) string {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), "content.txt")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	r.run(tb, "artifact", "put", "--subject", subject, "--artifact-type", artifactType,
		"--file", f, "--file-media-type", "text/plain")
	// put prints nothing by default; list finds the digest.
	for _, d := range r.referrers(tb, subject, "--filter-artifact-type", artifactType) {
		return d.Digest.String()
	}
	tb.Fatalf("the %s artifact just put on %s is not listed", artifactType, subject)
	return ""
}

// referrers lists the referrers of ref with `regctl artifact list`, as
// regctl gives them to its user (filtered by regctl too, whatever the
// registry did), sorted by digest.
func (r *regctl) referrers(tb testing.TB, ref string, extra ...string) []v1.Descriptor {
	tb.Helper()
	args := append([]string{"artifact", "list", "--format", "{{json .Descriptors}}"}, extra...)
	var ds []v1.Descriptor
	mustJSON(tb, []byte(r.run(tb, append(args, ref)...)), &ds)
	slices.SortFunc(ds, func(a, b v1.Descriptor) int { return cmp.Compare(a.Digest.String(), b.Digest.String()) })
	return ds
}

// TestRegctlReferrers puts a signature and an SBOM on an image and an SBOM
// on an index upstream, then lists them and copies the images with their
// referrers, through the proxy and straight from the upstream.
func TestRegctlReferrers(t *testing.T) {
	u, fx, d := startProxy(t)
	rc := newRegctl(t, u.Host, d.Addr)

	busybox, _, _ := strings.Cut(repoBusybox, ":")
	multi, _, _ := strings.Cut(repoMulti, ":")
	upBusybox := busybox + "@" + digestOf(t, fx.Busybox).String()
	upMulti := multi + "@" + digestOf(t, fx.Multi).String()
	sbom := rc.putReferrer(t, u.ref(upBusybox), sbomType, "busybox sbom")
	sig := rc.putReferrer(t, u.ref(upBusybox), sigType, "busybox signature")
	multiSBOM := rc.putReferrer(t, u.ref(upMulti), sbomType, "multi sbom")

	// The proxy's own digests: each stands for the upstream digest above.
	proxyBusybox := busybox + "@" + d.manifestDigest(t, busybox, "latest")
	proxyMulti := multi + "@" + d.manifestDigest(t, multi, "latest")

	t.Run("artifact list", func(t *testing.T) {
		for _, tt := range []struct {
			name      string
			up, proxy string // the same image, by upstream and by proxy digest
			filter    []string
			want      []string
		}{
			{"image", upBusybox, proxyBusybox, nil, []string{sbom, sig}},
			{"image, artifactType", upBusybox, proxyBusybox, []string{"--filter-artifact-type", sigType}, []string{sig}},
			{"index", upMulti, proxyMulti, nil, []string{multiSBOM}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				direct := rc.referrers(t, u.ref(tt.up), tt.filter...)
				proxied := rc.referrers(t, d.ref(tt.proxy), tt.filter...)
				var got []string
				for _, desc := range proxied {
					got = append(got, desc.Digest.String())
				}
				slices.Sort(tt.want)
				if !slices.Equal(got, tt.want) {
					t.Errorf("through the proxy: referrers %v, want %v", got, tt.want)
				}
				if !slices.EqualFunc(direct, proxied, sameReferrer) {
					t.Errorf("through the proxy:\n%+v\nstraight from the upstream:\n%+v", proxied, direct)
				}
			})
		}
	})

	// The referrers tag that regctl stored upstream is a tag like any
	// other through the proxy: the index of referrers, not the image it
	// names with the layer appended.
	t.Run("referrers tag", func(t *testing.T) {
		ref := busybox + ":sha256-" + strings.TrimPrefix(digestOf(t, fx.Busybox).String(), "sha256:")
		if tags := rc.run(t, "tag", "ls", d.ref(busybox)); !slices.Contains(strings.Fields(tags), ref[len(busybox)+1:]) {
			t.Errorf("tags through the proxy: %q, want the referrers tag %s", tags, ref)
		}
		direct := rc.run(t, "manifest", "get", "--format", "raw-body", u.ref(ref))
		proxied := rc.run(t, "manifest", "get", "--format", "raw-body", d.ref(ref))
		if proxied != direct {
			t.Errorf("%s through the proxy:\n%s\nstraight from the upstream:\n%s", ref, proxied, direct)
		}
	})

	t.Run("image copy --referrers", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			repo string
			want []string
		}{
			{"image", repoBusybox, []string{sbom, sig}},
			{"index", repoMulti, []string{multiSBOM}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				for _, src := range []string{u.ref(tt.repo), d.ref(tt.repo)} {
					dir := filepath.Join(t.TempDir(), "oci")
					rc.run(t, "image", "copy", "--referrers", src, "ocidir://"+dir+":copy")
					for _, want := range tt.want {
						hex := strings.TrimPrefix(want, "sha256:")
						if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", hex)); err != nil {
							t.Errorf("copy of %s: referrer %s not copied: %v", src, want, err)
						}
					}
				}
			})
		}
	})
}

// sameReferrer compares what a referrers answer says of one artifact.
func sameReferrer(a, b v1.Descriptor) bool {
	return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType && a.ArtifactType == b.ArtifactType
}
