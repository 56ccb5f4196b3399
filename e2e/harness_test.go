package e2e

// The harness: tool discovery, the upstream registry, the offline test
// images, the client wrappers (skopeo, crane, podman) and the daemon under
// test. Tests in registry_test.go prove it against the upstream alone;
// proxy_test.go uses it through towerreg-dev.
//
// It is spread over gate_test.go (TestMain, tool discovery), process_test.go
// (servers), upstream_test.go, images_test.go (the test images),
// layout_test.go (reading what the clients wrote), clients_test.go and
// daemon_test.go (the daemon under test, raw HTTP). This file tests its
// own pieces.

import (
	"archive/tar"
	"maps"
	"slices"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/internal/prereq"
)

// ---------------------------------------------------------------------------
// Tests of the harness's own pieces

// TestHarnessImages checks the offline test images: well-formed, the
// layouts the tests rely on, and deterministic.
func TestHarnessImages(t *testing.T) {
	fx := testImages(t)
	again, err := buildFixtures(needStaticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := digestOf(t, fx.Multi), digestOf(t, again.Multi); a != b {
		t.Errorf("test/multi built twice: %s then %s; the images must be deterministic", a, b)
	}

	files := layerFiles(t, mustLayer(t, fx.Busybox, 0))
	if f := files["bin/busybox"]; f.Type != tar.TypeReg || f.Mode&0o111 == 0 {
		t.Errorf("bin/busybox: %+v, want an executable file", f.Mode)
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "env"} {
		if f := files["bin/"+applet]; f.Type != tar.TypeSymlink || f.Linkname != "busybox" {
			t.Errorf("bin/%s: type %q link %q, want a symlink to busybox", applet, f.Type, f.Linkname)
		}
	}
	if _, ok := layerFiles(t, mustLayer(t, fx.NoShell, 0))["bin/sh"]; ok {
		t.Error("test/noshell has bin/sh")
	}

	for _, tt := range []struct {
		name      string
		img       v1.Image
		mediaType types.MediaType
		arch      string
	}{
		{"busybox", fx.Busybox, types.DockerManifestSchema2, "amd64"},
		{"echo", fx.Echo, types.OCIManifestSchema1, "amd64"},
		{"noshell", fx.NoShell, types.DockerManifestSchema2, "amd64"},
		{"multi/amd64", fx.MultiAMD64, types.OCIManifestSchema1, "amd64"},
		{"multi/arm64", fx.MultiARM64, types.OCIManifestSchema1, "arm64"},
	} {
		mt, err := tt.img.MediaType()
		if err != nil || mt != tt.mediaType {
			t.Errorf("%s: media type %s (%v), want %s", tt.name, mt, err, tt.mediaType)
		}
		cf, err := tt.img.ConfigFile()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if cf.OS != "linux" || cf.Architecture != tt.arch {
			t.Errorf("%s: platform %s/%s, want linux/%s", tt.name, cf.OS, cf.Architecture, tt.arch)
		}
		if n := len(layerDigests(t, tt.img)); len(cf.RootFS.DiffIDs) != n || len(cf.History) != n {
			t.Errorf("%s: %d layers, %d diff_ids, %d history entries", tt.name, n, len(cf.RootFS.DiffIDs), len(cf.History))
		}
	}
}

func mustLayer(tb testing.TB, img v1.Image, i int) v1.Layer {
	tb.Helper()
	ls, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	if i >= len(ls) {
		tb.Fatalf("image has %d layers, want layer %d", len(ls), i)
	}
	return ls[i]
}

// TestHarnessBigImage runs the benchmark image generator small: layers of
// the asked size that gzip cannot shrink, distinct, and the same on every
// build.
func TestHarnessBigImage(t *testing.T) {
	prereq.Gate(t, "real registries and clients")
	const layers, total = 3, 3 * 256 << 10
	img := bigImage(t, layers, total, 1)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != layers {
		t.Fatalf("%d layers, want %d", len(ls), layers)
	}
	seen := map[v1.Hash]bool{}
	for i, l := range ls {
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		if size < total/layers {
			t.Errorf("layer %d: %d bytes compressed, want at least the %d bytes of random content", i, size, total/layers)
		}
		d := digestOf(t, l)
		if seen[d] {
			t.Errorf("layer %d repeats digest %s", i, d)
		}
		seen[d] = true
		files := layerFiles(t, l)
		if f, ok := files["big/layer-"+strconv.Itoa(i)+".bin"]; !ok || len(f.Body) != total/layers {
			t.Errorf("layer %d: files %v, want big/layer-%d.bin of %d bytes", i, slices.Collect(maps.Keys(files)), i, total/layers)
		}
	}
	if a, b := digestOf(t, img), digestOf(t, bigImage(t, layers, total, 1)); a != b {
		t.Errorf("same seed, two digests: %s, %s", a, b)
	}
	if a, b := digestOf(t, img), digestOf(t, bigImage(t, layers, total, 2)); a == b {
		t.Errorf("two seeds, one digest: %s", a)
	}
}
