package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzPackNames packs a tree whose file names and one symlink target come
// from the fuzzer: Pack never panics, and what it writes is a valid
// gzipped tar whose names are relative and clean (no "..", no "/" in
// front, no "." or empty component) and whose links stay inside the layer,
// so that no name can write outside the image's root when it is unpacked.
func FuzzPackNames(f *testing.F) {
	for _, s := range [][2]string{
		{"foo.txt\nbin/tool", "bin/tool"},
		{"../escape\nok", "ok"},
		{"/abs\na/./b\na//c", "../../etc/passwd"},
		{"a\x00b\n" + strings.Repeat("long/", 40) + "x", "/etc/shadow"},
		{".platforms/linux_amd64/.towerreg/entry\n.towerreg/entry", ".towerreg/entry"},
		{"dir/\ndir/..\n..\n.", "dir/../.."},
		{"é/ü\n\\back\\slash\n-rf \n a b", "é/ü"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, names, link string) {
		src := fstest.MapFS{}
		for _, n := range strings.Split(names, "\n") {
			// A name that is not a valid fs.FS path (with "..", "/" in front
			// or an empty component) exists in no directory Pack is given:
			// os.DirFS cannot list one, and MapFS would loop on it.
			if fs.ValidPath(n) && n != "." {
				src[n] = &fstest.MapFile{Data: []byte(n), Mode: 0o644}
			}
		}
		src["the-link"] = &fstest.MapFile{Data: []byte(link), Mode: fs.ModeSymlink | 0o777}
		var out bytes.Buffer
		built, err := Pack(t.Context(), src, &out)
		if err != nil {
			return
		}
		if built.GzipSize != int64(out.Len()) {
			t.Fatalf("Built says %d bytes, wrote %d", built.GzipSize, out.Len())
		}
		zr, err := gzip.NewReader(&out)
		if err != nil {
			t.Fatalf("output is not gzip: %v", err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("output is not a valid tar: %v", err)
			}
			name := strings.TrimSuffix(h.Name, "/")
			if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
				t.Fatalf("entry name %q is not relative and clean", h.Name)
			}
			if h.Typeflag == tar.TypeSymlink {
				target := path.Join(path.Dir(name), h.Linkname)
				if path.IsAbs(h.Linkname) || target == ".." || strings.HasPrefix(target, "../") {
					t.Fatalf("link %q -> %q leads outside the layer", h.Name, h.Linkname)
				}
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				t.Fatalf("entry %q: %v", h.Name, err)
			}
		}
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatalf("gzip trailer: %v", err)
		}
	})
}
