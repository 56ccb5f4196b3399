package defaultlayer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

// blobs is an in-memory layer.Blobs.
type blobs map[v1.Hash][]byte

func (b blobs) Create(context.Context) (layer.BlobWriter, error) {
	return &blobWriter{blobs: b}, nil
}

type blobWriter struct {
	blobs blobs
	bytes.Buffer
}

func (w *blobWriter) Commit(_ context.Context, digest v1.Hash) error {
	w.blobs[digest] = bytes.Clone(w.Bytes())
	return nil
}

func (w *blobWriter) Close() error { return nil }

// headers reads the tar headers of a gzipped layer, by name.
func headers(t *testing.T, blob []byte) map[string]*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	hdrs := make(map[string]*tar.Header)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
	}
}

func TestPackSet(t *testing.T) {
	dst := blobs{}
	set, err := layer.PackSet(t.Context(), FS(), dst)
	if err != nil {
		t.Fatalf("PackSet: %v", err)
	}
	missing := Missing()
	t.Logf("entry binaries missing for %q", missing)

	// Every platform Missing does not list has an overlay with the entry.
	var built []string
	for _, p := range platforms() {
		if !slices.Contains(missing, p) {
			built = append(built, p)
		}
	}
	var keys []string
	for k := range set.Platforms {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, built) {
		t.Errorf("overlays %q, want %q", keys, built)
	}
	if set.Common.HasEntry {
		t.Error("the common layer has the entry")
	}

	layers := map[string]layer.Built{"common": set.Common}
	for k, b := range set.Platforms {
		layers[k] = b
	}
	for name, b := range layers {
		t.Run(name, func(t *testing.T) {
			hdrs := headers(t, dst[b.GzipDigest])
			foo, ok := hdrs["foo.txt"]
			if !ok || foo.Mode != 0o644 || foo.Typeflag != tar.TypeReg {
				t.Errorf("foo.txt: %+v, want a 0644 file", foo)
			}
			if _, ok := hdrs[layer.PlatformsDir+"/"]; ok {
				t.Errorf("%s packed", layer.PlatformsDir)
			}
			if name == "common" {
				return
			}
			if !b.HasEntry {
				t.Error("HasEntry = false")
			}
			if d := hdrs[".towerreg/"]; d == nil || d.Mode != 0o755 {
				t.Errorf(".towerreg/: %+v, want a 0755 directory", d)
			}
			if e := hdrs[".towerreg/entry"]; e == nil || e.Mode != 0o755 || e.Size == 0 {
				t.Errorf(".towerreg/entry: %+v, want a 0755 file", e)
			}
		})
	}
}

func TestModes(t *testing.T) {
	fsys := modeFS{fstest.MapFS{
		"foo.txt":                                {Data: []byte("x"), Mode: 0o444},
		"dir/sub/file":                           {Data: []byte("x"), Mode: 0o444},
		".towerreg/entry":                        {Data: []byte("x"), Mode: 0o444},
		".towerreg/other":                        {Data: []byte("x"), Mode: 0o444},
		".platforms/linux_amd64/.towerreg/entry": {Data: []byte("x"), Mode: 0o444},
		".platforms/linux_amd64/entry":           {Data: []byte("x"), Mode: 0o444},
		".platforms/x/y/.towerreg/entry":         {Data: []byte("x"), Mode: 0o444},
	}}
	want := map[string]fs.FileMode{
		".":                                      fs.ModeDir | 0o755,
		"foo.txt":                                0o644,
		"dir":                                    fs.ModeDir | 0o755,
		"dir/sub":                                fs.ModeDir | 0o755,
		"dir/sub/file":                           0o644,
		".towerreg":                              fs.ModeDir | 0o755,
		".towerreg/entry":                        0o755,
		".towerreg/other":                        0o644,
		".platforms":                             fs.ModeDir | 0o755,
		".platforms/linux_amd64":                 fs.ModeDir | 0o755,
		".platforms/linux_amd64/.towerreg/entry": 0o755,
		".platforms/linux_amd64/entry":           0o644,
		".platforms/x/y/.towerreg/entry":         0o644,
	}
	for name, mode := range want {
		// Through Open and Stat, and through the directory listing.
		if info, err := fs.Stat(fsys, name); err != nil || info.Mode() != mode {
			t.Errorf("Stat(%s) = %v, %v; want mode %v", name, info, err, mode)
		}
	}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if w, ok := want[name]; ok && info.Mode() != w {
			t.Errorf("WalkDir %s: mode %v, want %v", name, info.Mode(), w)
		}
		if d.Type() != info.Mode().Type() {
			t.Errorf("WalkDir %s: type %v, info says %v", name, d.Type(), info.Mode().Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "foo.txt", ".towerreg/entry", "dir/sub/file"); err != nil {
		t.Error(err)
	}
}

func TestFS(t *testing.T) {
	if err := fstest.TestFS(FS(), "foo.txt"); err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(FS(), "foo.txt")
	if err != nil || len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("foo.txt = %q, %v; want a line", b, err)
	}
}
