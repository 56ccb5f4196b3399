package e2e

import (
	"archive/tar"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// ---------------------------------------------------------------------------
// Reading what the clients wrote

// file is one entry of a layer tar.
type file struct {
	Type     byte
	Mode     int64
	Linkname string
	Body     []byte // regular files up to 4 MiB
}

// layerFiles lists a layer's entries by clean relative name ("bin/sh").
func layerFiles(tb testing.TB, l v1.Layer) map[string]file {
	tb.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		tb.Fatalf("layer: %v", err)
	}
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			tb.Fatalf("layer tar: %v", err)
		}
		f := file{Type: h.Typeflag, Mode: h.Mode, Linkname: h.Linkname}
		if h.Typeflag == tar.TypeReg && h.Size <= 4<<20 {
			if f.Body, err = io.ReadAll(tr); err != nil {
				tb.Fatalf("layer tar %s: %v", h.Name, err)
			}
		}
		n := strings.TrimPrefix(filepath.Clean("/"+h.Name), "/")
		files[n] = f
	}
}

// layoutTop returns the one manifest skopeo wrote into an OCI layout with
// `oci:DIR` (no tag): an image or, after `--all` of a list, an index.
func layoutTop(tb testing.TB, dir string) (v1.ImageIndex, v1.Descriptor) {
	tb.Helper()
	lp, err := layout.FromPath(dir)
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	if len(im.Manifests) != 1 {
		tb.Fatalf("OCI layout %s lists %d manifests, want 1", dir, len(im.Manifests))
	}
	return idx, im.Manifests[0]
}

// layoutImage reads the single image in an OCI layout.
func layoutImage(tb testing.TB, dir string) v1.Image {
	tb.Helper()
	idx, d := layoutTop(tb, dir)
	if d.MediaType.IsIndex() {
		tb.Fatalf("OCI layout %s holds an index (%s), want an image", dir, d.MediaType)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	return img
}

// layoutIndex reads the single index in an OCI layout and returns it with
// its images by platform ("linux/arm64/v8").
func layoutIndex(tb testing.TB, dir string) (v1.ImageIndex, map[string]v1.Image) {
	tb.Helper()
	top, d := layoutTop(tb, dir)
	if !d.MediaType.IsIndex() {
		tb.Fatalf("OCI layout %s holds %s, want an index", dir, d.MediaType)
	}
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		tb.Fatalf("OCI layout %s: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		tb.Fatal(err)
	}
	imgs := map[string]v1.Image{}
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			tb.Fatalf("OCI layout %s: child %s: %v", dir, m.Digest, err)
		}
		imgs[m.Platform.String()] = img
	}
	return idx, imgs
}

// layerDigests lists an image's layer digests in order.
func layerDigests(tb testing.TB, img v1.Image) []v1.Hash {
	tb.Helper()
	ls, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	var ds []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

// layerDiffIDs lists an image's diff IDs (the digests of its uncompressed
// layers) in order, as strings: what Docker lists as RootFS.Layers.
func layerDiffIDs(tb testing.TB, img v1.Image) []string {
	tb.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	return diffIDs(cf)
}

// diffIDs is a config's diff IDs as strings.
func diffIDs(cf *v1.ConfigFile) []string {
	var ids []string
	for _, h := range cf.RootFS.DiffIDs {
		ids = append(ids, h.String())
	}
	return ids
}

// checkOneLayerMore checks that the diff IDs a client holds for a proxied
// image are the upstream image's, want, and one more: the layer appended.
func checkOneLayerMore(tb testing.TB, got, want []string) {
	tb.Helper()
	if len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) {
		tb.Errorf("through the proxy: layers %v, want %v and one more", got, want)
	}
}

func digestOf(tb testing.TB, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	tb.Helper()
	d, err := x.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
