package e2e

// Docker through the proxy: Debian's dockerd (startDockerd), pulling from
// the daemon on 127.0.0.1 over plain HTTP with no daemon setting, as the
// README tells users to.

import (
	"slices"
	"strings"
	"testing"
)

// TestDockerRun runs the test images through the proxy with docker run:
// foo.txt, the entry chaining to the original entrypoint and command, the
// image with no shell; the same cases as podman's.
func TestDockerRun(t *testing.T) {
	dk := startDockerd(t)
	u, _, d := startProxy(t)
	checkRuns(t, u, d, dk.run)
}

// TestDockerPlatformAndDigest pulls the arm64 image of an index by
// --platform (it cannot run here: the image config must say arm64, and
// have the layer appended), and pulls and runs images by the digests the
// proxy made.
func TestDockerPlatformAndDigest(t *testing.T) {
	dk := startDockerd(t)
	u, fx, d := startProxy(t)

	t.Run("arm64 by platform", func(t *testing.T) {
		proxied, direct := d.ref(repoMulti), u.ref(repoMulti)
		for _, ref := range []string{proxied, direct} {
			dk.docker(t, "pull", "--quiet", "--platform", "linux/arm64", ref)
			if got := dk.inspect(t, ref, "{{.Os}}/{{.Architecture}}/{{.Variant}}"); got != "linux/arm64/v8" {
				t.Errorf("%s pulled for linux/arm64 is %s", ref, got)
			}
		}
		want := layerDiffIDs(t, fx.MultiARM64)
		if got := dk.layersOf(t, direct); !slices.Equal(got, want) {
			t.Errorf("straight from the upstream: layers %v, want %v", got, want)
		}
		checkOneLayerMore(t, dk.layersOf(t, proxied), want)
		// Docker keeps NAME@<index digest> pointing at the arm64 image it
		// pulled, and refuses ("Cannot overwrite digest") to pull the
		// same index for amd64 below until that image is gone.
		for _, ref := range []string{proxied, direct} {
			dk.docker(t, "image", "rm", "--force", dk.inspect(t, ref, "{{.Id}}"))
		}
	})

	for _, tt := range []struct {
		name string
		repo string // name:tag
	}{
		{"manifest", repoBusybox},
		{"index", repoMulti},
	} {
		t.Run("by digest/"+tt.name, func(t *testing.T) {
			name, tag, _ := strings.Cut(tt.repo, ":")
			dg := d.manifestDigest(t, name, tag)
			ref := d.ref(name + "@" + dg)
			if got := strings.TrimSpace(dk.run(t, ref, "cat", "/"+fooPath)); got != fooContent {
				t.Errorf("docker run %s cat /%s: %q, want %q", ref, fooPath, got, fooContent)
			}
			if got := dk.inspect(t, ref, "{{json .RepoDigests}}"); !strings.Contains(got, d.Addr+"/"+name+"@"+dg) {
				t.Errorf("RepoDigests %s, want %s@%s", got, name, dg)
			}
		})
	}
}
