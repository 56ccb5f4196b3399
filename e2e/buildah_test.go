package e2e

// buildah through the proxy: `buildah from` and `buildah bud` of images
// FROM the proxy, RUN steps included. buildah shares newPodman's store and
// configuration, so that podman runs what buildah built.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildah runs buildah on a podman store.
type buildah struct {
	bin string
	pm  *podman
}

func newBuildah(tb testing.TB) *buildah {
	tb.Helper()
	return &buildah{bin: need(tb, "buildah"), pm: newPodman(tb)}
}

// run runs buildah with args and fails the test on error.
func (b *buildah) run(tb testing.TB, args ...string) string {
	tb.Helper()
	return mustRun(tb, b.pm.env, b.bin, b.pm.args(args...)...)
}

// from makes a working container of image, pulled over plain HTTP, and
// returns its name.
func (b *buildah) from(tb testing.TB, image string, extra ...string) string {
	tb.Helper()
	args := append([]string{"from", "--quiet", "--tls-verify=false"}, extra...)
	return strings.TrimSpace(b.run(tb, append(args, image)...))
}

// exec runs a command in a working container, with no network, and
// returns its stdout. As a RUN step, it does not go through the
// image's entrypoint.
func (b *buildah) exec(tb testing.TB, ctr string, args ...string) string {
	tb.Helper()
	return b.run(tb, append([]string{"run", "--network", "none", ctr, "--"}, args...)...)
}

// config returns the image config of a working container, from
// `buildah inspect` (whose --format has no json function).
func (b *buildah) config(tb testing.TB, ctr string) v1.ConfigFile {
	tb.Helper()
	var out struct{ OCIv1 v1.ConfigFile }
	mustJSON(tb, []byte(b.run(tb, "inspect", "--type", "container", ctr)), &out)
	return out.OCIv1
}

// bud builds containerfile into the image tag, with no network for its
// RUN steps. It pulls the FROM image again, whatever the store holds, so
// that bud itself is the client of the proxy.
func (b *buildah) bud(tb testing.TB, tag, containerfile string) {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		tb.Fatal(err)
	}
	b.run(tb, "bud", "--quiet", "--pull=always", "--tls-verify=false", "--network", "none",
		"-f", filepath.Join(dir, "Containerfile"), "-t", tag, dir)
}

// TestBuildah pulls the test images through the proxy with buildah: from
// and run, bud with RUN steps (in a shell and in exec form, for the image
// with no shell), arm64 by platform and by digest.
func TestBuildah(t *testing.T) {
	b := newBuildah(t)
	_, fx, d := startProxy(t)

	t.Run("from busybox", func(t *testing.T) {
		ctr := b.from(t, d.ref(repoBusybox))
		if got := strings.TrimSpace(b.exec(t, ctr, "cat", "/"+fooPath)); got != fooContent {
			t.Errorf("cat /%s: %q, want %q", fooPath, got, fooContent)
		}
		if got := b.config(t, ctr).Config.Entrypoint; !slices.Equal(got, []string{entryCmd}) {
			t.Errorf("entrypoint %q, want [%q]", got, entryCmd)
		}
	})

	t.Run("from noshell", func(t *testing.T) {
		// The entry, run by hand, chains to the image's own entrypoint.
		ctr := b.from(t, d.ref(repoNoShell))
		if got := strings.TrimSpace(b.exec(t, ctr, entryCmd, "through the entry")); got != "through the entry" {
			t.Errorf("%s through the entry: %q", entryCmd, got)
		}
	})

	t.Run("bud RUN", func(t *testing.T) {
		const tag = "localhost/e2e/bud-busybox:latest"
		b.bud(t, tag, fmt.Sprintf("FROM %s\nRUN cp /%s /from-run.txt && echo $((6*7)) > /answer.txt\n", d.ref(repoBusybox), fooPath))
		// The built image keeps the entry: podman's arguments go through
		// it to the original (empty) entrypoint.
		if got := strings.TrimSpace(b.pm.run(t, tag, "cat", "/from-run.txt", "/answer.txt")); got != fooContent+"\n42" {
			t.Errorf("the built image has %q, want %q", got, fooContent+"\n42")
		}
	})

	// No comma in a subtest's name: buildah splits -f at commas.
	t.Run("bud RUN exec form no shell", func(t *testing.T) {
		const tag = "localhost/e2e/bud-noshell:latest"
		b.bud(t, tag, fmt.Sprintf("FROM %s\nRUN [\"/bin/busybox\", \"cp\", \"/%s\", \"/copy.txt\"]\n", d.ref(repoNoShell), fooPath))
		if got := strings.TrimSpace(b.pm.run(t, tag)); got != noShellOutput {
			t.Errorf("the built image prints %q, want %q: the entry must chain to the original entrypoint", got, noShellOutput)
		}
	})

	t.Run("by digest", func(t *testing.T) {
		name, tag, _ := strings.Cut(repoBusybox, ":")
		ref := d.ref(name + "@" + d.manifestDigest(t, name, tag))
		ctr := b.from(t, ref)
		if got := strings.TrimSpace(b.exec(t, ctr, "cat", "/"+fooPath)); got != fooContent {
			t.Errorf("cat /%s: %q, want %q", fooPath, got, fooContent)
		}
	})

	// Last: the store then holds test/multi:latest as the arm64 image, which
	// a later from of the same name, for amd64, would reuse.
	t.Run("arm64 by platform", func(t *testing.T) {
		ctr := b.from(t, d.ref(repoMulti), "--platform", "linux/arm64")
		cf := b.config(t, ctr)
		if cf.OS != "linux" || cf.Architecture != "arm64" {
			t.Errorf("from --platform linux/arm64 gave a %s/%s image", cf.OS, cf.Architecture)
		}
		checkOneLayerMore(t, diffIDs(&cf), layerDiffIDs(t, fx.MultiARM64))
	})
}
