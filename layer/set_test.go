package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// memBlobs is an in-memory Blobs that checks what it is given.
type memBlobs struct {
	blobs     map[v1.Hash][]byte
	open      int   // writers created and not closed
	commitErr error // returned by every Commit, if set
}

func newMemBlobs() *memBlobs { return &memBlobs{blobs: make(map[v1.Hash][]byte)} }

func (m *memBlobs) Create(ctx context.Context) (BlobWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.open++
	return &memWriter{m: m}, nil
}

type memWriter struct {
	m      *memBlobs
	buf    bytes.Buffer
	closed bool
}

func (w *memWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }

func (w *memWriter) Commit(_ context.Context, digest v1.Hash) error {
	if w.m.commitErr != nil {
		return w.m.commitErr
	}
	if got := digestOf(w.buf.Bytes()); got != digest {
		return fmt.Errorf("commit as %s, wrote %s", digest, got)
	}
	w.m.blobs[digest] = bytes.Clone(w.buf.Bytes())
	return nil
}

func (w *memWriter) Close() error {
	if !w.closed {
		w.closed = true
		w.m.open--
	}
	return nil
}

// setTree is a layer directory with three overlays.
var setTree = []node{
	{name: "foo.txt", data: "common\n"},
	{name: "etc/conf", data: "common conf"},
	{name: "etc/link", mode: fs.ModeSymlink, data: "conf"},
	{name: PlatformsDir + "/.gitignore", data: "*/.towerreg/entry\n"},
	{name: PlatformsDir + "/linux_amd64/.towerreg/entry", mode: 0o755, data: "amd64 entry"},
	{name: PlatformsDir + "/linux_amd64/etc/conf", mode: 0o600, data: "amd64 conf"},
	{name: PlatformsDir + "/linux_amd64/etc/up", mode: fs.ModeSymlink, data: "../foo.txt"},
	{name: PlatformsDir + "/linux_arm64/.towerreg/entry", mode: 0o755, data: "arm64 entry"},
	{name: PlatformsDir + "/linux_arm_v7/etc/link", mode: fs.ModeSymlink, data: "../foo.txt"},
	{name: PlatformsDir + "/linux_arm_v7/etc/empty", mode: fs.ModeDir | 0o755},
}

func TestPackSet(t *testing.T) {
	dir := writeTree(t, setTree)
	blobs := newMemBlobs()
	set, err := PackSet(t.Context(), os.DirFS(dir), blobs)
	if err != nil {
		t.Fatalf("PackSet: %v", err)
	}
	if blobs.open != 0 {
		t.Errorf("%d blob writers left open", blobs.open)
	}

	// The common layer is Pack of the tree, which leaves PlatformsDir out.
	common, _ := mustPack(t, os.DirFS(dir))
	if set.Common != common {
		t.Errorf("Common = %+v, want Pack's %+v", set.Common, common)
	}
	if keys := slices.Sorted(maps.Keys(set.Platforms)); !slices.Equal(keys, []string{"linux_amd64", "linux_arm64", "linux_arm_v7"}) {
		t.Fatalf("Platforms = %q", keys)
	}

	tests := []struct {
		key      string
		hasEntry bool
		want     map[string]string // name -> content or link target, for every entry
	}{
		{"", false, map[string]string{
			"etc/": "", "etc/conf": "common conf", "etc/link": "conf", "foo.txt": "common\n",
		}},
		{"linux_amd64", true, map[string]string{
			".towerreg/": "", ".towerreg/entry": "amd64 entry",
			"etc/": "", "etc/conf": "amd64 conf", "etc/link": "conf", "etc/up": "../foo.txt", "foo.txt": "common\n",
		}},
		{"linux_arm64", true, map[string]string{
			".towerreg/": "", ".towerreg/entry": "arm64 entry",
			"etc/": "", "etc/conf": "common conf", "etc/link": "conf", "foo.txt": "common\n",
		}},
		{"linux_arm_v7", false, map[string]string{
			"etc/": "", "etc/conf": "common conf", "etc/empty/": "", "etc/link": "../foo.txt", "foo.txt": "common\n",
		}},
	}
	for _, tt := range tests {
		t.Run("platform "+tt.key, func(t *testing.T) {
			b := set.Common
			if tt.key != "" {
				b = set.Platforms[tt.key]
			}
			if b.HasEntry != tt.hasEntry {
				t.Errorf("HasEntry = %v, want %v", b.HasEntry, tt.hasEntry)
			}
			blob, ok := blobs.blobs[b.GzipDigest]
			if !ok {
				t.Fatalf("blob %s not committed", b.GzipDigest)
			}
			entries := readLayer(t, blob)
			if b.Files != len(entries) {
				t.Errorf("Files = %d, want %d", b.Files, len(entries))
			}
			got := make(map[string]string)
			for _, e := range entries {
				got[e.hdr.Name] = e.data + e.hdr.Linkname
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("layer holds\n%v\nwant\n%v", got, tt.want)
			}
			if tt.key == "linux_amd64" {
				for _, e := range entries {
					if e.hdr.Name == "etc/conf" && e.hdr.Mode != 0o600 {
						t.Errorf("etc/conf mode %#o, want the overlay's 0600", e.hdr.Mode)
					}
				}
			}
		})
	}

	// Same tree, same set.
	again, err := PackSet(t.Context(), os.DirFS(writeTree(t, setTree)), newMemBlobs())
	if err != nil {
		t.Fatal(err)
	}
	if again.Common != set.Common || !maps.Equal(again.Platforms, set.Platforms) {
		t.Errorf("PackSet of the same tree differs:\n%+v\n%+v", again, set)
	}
}

func TestPackSetNoOverlays(t *testing.T) {
	tests := []struct {
		name string
		tree []node
	}{
		{"no platforms dir", []node{{name: "foo.txt"}}},
		{"empty platforms dir", []node{{name: "foo.txt"}, {name: PlatformsDir, mode: fs.ModeDir | 0o755}}},
		{"only dotfiles", []node{{name: "foo.txt"}, {name: PlatformsDir + "/.gitignore"}, {name: PlatformsDir + "/.cache/x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := PackSet(t.Context(), os.DirFS(writeTree(t, tt.tree)), newMemBlobs())
			if err != nil {
				t.Fatalf("PackSet: %v", err)
			}
			if len(set.Platforms) != 0 || set.Common.Files != 1 {
				t.Errorf("PackSet = %+v, want only a common layer of one file", set)
			}
		})
	}
}

func TestPackSetErrors(t *testing.T) {
	common := []node{{name: "foo.txt"}, {name: "etc/conf"}}
	tests := []struct {
		name string
		tree []node
		want string // in the error
	}{
		{"file in platforms dir", []node{{name: PlatformsDir + "/README.md"}}, `"README.md" is not <os>_<arch>`},
		{"dash", []node{{name: PlatformsDir + "/linux-amd64/x"}}, `"linux-amd64"`},
		{"upper case", []node{{name: PlatformsDir + "/Linux_amd64/x"}}, `"Linux_amd64"`},
		{"empty part", []node{{name: PlatformsDir + "/linux__amd64/x"}}, `"linux__amd64"`},
		{"too many parts", []node{{name: PlatformsDir + "/linux_arm_v7_x/x"}}, `"linux_arm_v7_x"`},
		{"os only", []node{{name: PlatformsDir + "/linux/x"}}, `"linux"`},
		{"overlay is a file", []node{{name: PlatformsDir + "/linux_amd64"}}, "must be a directory"},
		{"overlay is a symlink", []node{{name: "d/x"}, {name: PlatformsDir + "/linux_amd64", mode: fs.ModeSymlink, data: "../d"}}, "must be a directory"},
		{"platforms dir is a file", []node{{name: PlatformsDir}}, "must be a directory"},
		{"same platform twice", []node{{name: PlatformsDir + "/linux_arm64/x"}, {name: PlatformsDir + "/linux_arm64_v8/x"}}, "same platform"},
		{"file over directory", []node{{name: PlatformsDir + "/linux_amd64/etc"}}, "etc: the platform overlay and the common tree disagree"},
		{"directory over file", []node{{name: PlatformsDir + "/linux_amd64/foo.txt/x"}}, "foo.txt: the platform overlay and the common tree disagree"},
		{"symlink over directory", []node{{name: PlatformsDir + "/linux_amd64/etc", mode: fs.ModeSymlink, data: "foo.txt"}}, "disagree"},
		{"escaping symlink in overlay", []node{{name: PlatformsDir + "/linux_amd64/l", mode: fs.ModeSymlink, data: "../x"}}, "pack .platforms/linux_amd64: pack l: " + ErrLinkEscapes.Error()},
		{"escaping symlink in common", []node{{name: "l", mode: fs.ModeSymlink, data: "/x"}}, "pack common layer: pack l: " + ErrLinkEscapes.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blobs := newMemBlobs()
			_, err := PackSet(t.Context(), os.DirFS(writeTree(t, append(slices.Clone(common), tt.tree...))), blobs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PackSet = %v, want an error with %q", err, tt.want)
			}
			if blobs.open != 0 {
				t.Errorf("%d blob writers left open", blobs.open)
			}
		})
	}
}

func TestPackSetBlobErrors(t *testing.T) {
	tree := mapTree(setTree)
	t.Run("commit", func(t *testing.T) {
		blobs := newMemBlobs()
		blobs.commitErr = errors.New("store full")
		if _, err := PackSet(t.Context(), tree, blobs); err == nil || !strings.Contains(err.Error(), "store full") {
			t.Errorf("PackSet = %v, want the commit error", err)
		}
		if blobs.open != 0 {
			t.Errorf("%d blob writers left open", blobs.open)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := PackSet(ctx, tree, newMemBlobs()); !errors.Is(err, context.Canceled) {
			t.Errorf("PackSet = %v, want context.Canceled", err)
		}
	})
}

func TestSetFor(t *testing.T) {
	built := func(n int) Built { return Built{Files: n} }
	set := Set{
		Common: built(0),
		Platforms: map[string]Built{
			"linux_amd64":    built(1),
			"linux_arm64_v8": built(2),
			"linux_arm_v7":   built(3),
			"linux_arm":      built(4),
			"linux_amd64_v3": built(5),
		},
	}
	tests := []struct {
		p    *v1.Platform
		want int
	}{
		{nil, 0},
		{&v1.Platform{OS: "linux", Architecture: "amd64"}, 1},
		{&v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v1"}, 1},
		{&v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}, 1},
		{&v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, 5},
		{&v1.Platform{OS: "linux", Architecture: "arm64"}, 2},
		{&v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, 2},
		{&v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, 3},
		{&v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, 4},
		{&v1.Platform{OS: "linux", Architecture: "arm"}, 4},
		{&v1.Platform{OS: "linux", Architecture: "s390x"}, 0},
		{&v1.Platform{OS: "windows", Architecture: "amd64"}, 0},
		{&v1.Platform{OS: "unknown", Architecture: "unknown"}, 0},
		{&v1.Platform{}, 0},
	}
	for _, tt := range tests {
		name := "nil"
		if tt.p != nil {
			name = tt.p.String()
		}
		t.Run(name, func(t *testing.T) {
			if got := set.For(tt.p).Files; got != tt.want {
				t.Errorf("For(%v) = layer %d, want %d", tt.p, got, tt.want)
			}
		})
	}

	// The spelling without the baseline variant works the other way round.
	set.Platforms = map[string]Built{"linux_arm64": built(6)}
	if got := set.For(&v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}).Files; got != 6 {
		t.Errorf("For(linux/arm64/v8) = layer %d, want the linux_arm64 overlay", got)
	}
}

func TestPlatformKey(t *testing.T) {
	tests := []struct {
		p    v1.Platform
		want string
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "linux_amd64"},
		{v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v1"}, "linux_amd64"},
		{v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, "linux_amd64_v3"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "linux_arm64"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux_arm_v7"},
		{v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1"}, "windows_amd64"},
	}
	for _, tt := range tests {
		if got := PlatformKey(tt.p); got != tt.want {
			t.Errorf("PlatformKey(%v) = %q, want %q", tt.p, got, tt.want)
		}
		if p, err := parsePlatformKey(tt.want); err != nil || PlatformKey(p) != tt.want {
			t.Errorf("parsePlatformKey(%q) = %v, %v; does not round-trip", tt.want, p, err)
		}
	}
}

// TestOverlayFS checks the merged view against the fs.FS contracts.
func TestOverlayFS(t *testing.T) {
	lower := fstest.MapFS{
		"a.txt":     {Data: []byte("lower a")},
		"d/lower":   {Data: []byte("lower only")},
		"d/both":    {Data: []byte("lower both")},
		"d/link":    {Mode: fs.ModeSymlink, Data: []byte("lower")},
		"lower/dir": {Mode: fs.ModeDir | 0o700},
	}
	upper := fstest.MapFS{
		"d/both":      {Data: []byte("upper both"), Mode: 0o600},
		"d/upper":     {Data: []byte("upper only")},
		"d/link":      {Mode: fs.ModeSymlink, Data: []byte("upper")},
		"upper/x/y":   {Data: []byte("deep")},
		"lower/dir/z": {Data: []byte("into a lower dir")},
	}
	o := overlayFS{lower: lower, upper: upper}
	if err := fstest.TestFS(o, "a.txt", "d/lower", "d/both", "d/upper", "d/link", "upper/x/y", "lower/dir/z"); err != nil {
		t.Fatal(err)
	}
	reads := []struct{ name, want string }{
		{"a.txt", "lower a"},
		{"d/both", "upper both"},
		{"d/lower", "lower only"},
		{"upper/x/y", "deep"},
	}
	for _, r := range reads {
		if b, err := fs.ReadFile(o, r.name); err != nil || string(b) != r.want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", r.name, b, err, r.want)
		}
	}
	if target, err := fs.ReadLink(o, "d/link"); err != nil || target != "upper" {
		t.Errorf("ReadLink(d/link) = %q, %v; want upper", target, err)
	}
	if info, err := fs.Lstat(o, "d/both"); err != nil || info.Mode() != 0o600 {
		t.Errorf("Lstat(d/both) = %v, %v; want the upper mode 0600", info, err)
	}
	if _, err := o.Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
}

// TestPlatformFS: the tree PlatformFS gives packs to the layer PackSet made
// for that platform, overlay or common.
func TestPlatformFS(t *testing.T) {
	src := os.DirFS(writeTree(t, setTree))
	set, err := PackSet(t.Context(), src, newMemBlobs())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p       v1.Platform
		overlay string
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "linux_amd64"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "linux_arm64"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux_arm_v7"},
		{v1.Platform{OS: "linux", Architecture: "s390x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			fsys, name, err := PlatformFS(src, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if name != tt.overlay {
				t.Errorf("overlay %q, want %q", name, tt.overlay)
			}
			got, _ := mustPack(t, fsys)
			if want := set.For(&tt.p); got != want {
				t.Errorf("packed %+v, PackSet made %+v", got, want)
			}
		})
	}
}
