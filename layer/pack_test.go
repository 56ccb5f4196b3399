package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// node is one file of a test tree. Directories are implied by the files in
// them; a node with mode ModeDir makes an (empty) directory explicit.
type node struct {
	name string
	mode fs.FileMode // type and permissions; 0 means a 0644 file
	data string      // content, or the target of a symlink
}

// baseTree exercises every kind of entry Pack keeps.
var baseTree = []node{
	{name: "foo.txt", data: "hello\n"},
	{name: "bin/tool", mode: 0o755, data: "#!/bin/sh\necho tool\n"},
	{name: "bin/suid", mode: 0o755 | fs.ModeSetuid, data: "suid"},
	{name: "bin/sgid", mode: 0o750 | fs.ModeSetgid, data: "sgid"},
	{name: "tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777},
	{name: "empty", mode: fs.ModeDir | 0o700},
	{name: "bin/link", mode: fs.ModeSymlink, data: "tool"},
	{name: "bin/up", mode: fs.ModeSymlink, data: "../foo.txt"},
	{name: "a-b", data: "sorts before a/ bytewise"},
	{name: "a/b", data: "inside a"},
	{name: ".towerreg/entry", mode: 0o755, data: "entry"},
}

// writeTree creates nodes under a new temporary directory, in order.
func writeTree(t *testing.T, nodes []node) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range nodes {
		p := filepath.Join(dir, filepath.FromSlash(n.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := n.mode
		if mode == 0 {
			mode = 0o644
		}
		var err error
		switch {
		case mode&fs.ModeSymlink != 0:
			err = os.Symlink(n.data, p)
		case mode.IsDir():
			err = os.MkdirAll(p, 0o755)
		default:
			err = os.WriteFile(p, []byte(n.data), 0o600)
		}
		if err == nil && mode&fs.ModeSymlink == 0 {
			// After creation, so that the umask does not mask bits.
			err = os.Chmod(p, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mapTree is nodes as an fstest.MapFS.
func mapTree(nodes []node) fstest.MapFS {
	m := fstest.MapFS{}
	for _, n := range nodes {
		mode := n.mode
		if mode == 0 {
			mode = 0o644
		}
		m[n.name] = &fstest.MapFile{Data: []byte(n.data), Mode: mode}
	}
	return m
}

// mustPack packs fsys and returns what Pack returned and wrote.
func mustPack(t *testing.T, fsys fs.FS) (Built, []byte) {
	t.Helper()
	var buf bytes.Buffer
	b, err := Pack(t.Context(), fsys, &buf)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return b, buf.Bytes()
}

// tarEntry is a tar entry as read back.
type tarEntry struct {
	hdr  *tar.Header
	data string
}

// readLayer gunzips and untars blob.
func readLayer(t *testing.T, blob []byte) []tarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	tr := tar.NewReader(zr)
	var entries []tarEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("tar %s: %v", hdr.Name, err)
		}
		entries = append(entries, tarEntry{hdr, string(data)})
	}
	return entries
}

func entryNames(entries []tarEntry) []string {
	var ns []string
	for _, e := range entries {
		ns = append(ns, e.hdr.Name)
	}
	return ns
}

func TestPackDeterministic(t *testing.T) {
	reversed := slices.Clone(baseTree)
	slices.Reverse(reversed)
	want, _ := mustPack(t, os.DirFS(writeTree(t, baseTree)))

	tests := []struct {
		name  string
		fsys  func(t *testing.T) fs.FS
		blobs int
	}{
		{name: "same tree again", fsys: func(t *testing.T) fs.FS { return os.DirFS(writeTree(t, baseTree)) }},
		{name: "created in reverse order", fsys: func(t *testing.T) fs.FS { return os.DirFS(writeTree(t, reversed)) }},
		{name: "other mtimes and atimes", fsys: func(t *testing.T) fs.FS {
			dir := writeTree(t, baseTree)
			for i, n := range baseTree {
				if n.mode&fs.ModeSymlink != 0 {
					continue // Chtimes follows symlinks
				}
				when := time.Date(2001+i, 2, 3, 4, 5, 6, 789, time.UTC)
				if err := os.Chtimes(filepath.Join(dir, n.name), when.Add(time.Hour), when); err != nil {
					t.Fatal(err)
				}
			}
			return os.DirFS(dir)
		}},
		{name: "in memory", fsys: func(t *testing.T) fs.FS {
			m := mapTree(baseTree)
			for _, f := range m {
				f.ModTime = time.Now()
			}
			// MapFS makes implied directories 0555; writeTree makes them 0755.
			for _, d := range []string{"a", "bin", ".towerreg"} {
				m[d] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
			}
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := mustPack(t, tt.fsys(t))
			if got != want {
				t.Errorf("Pack = %+v, want %+v", got, want)
			}
		})
	}
}

// TestPackConcurrency checks that the gzip bytes do not depend on how many
// blocks pgzip compresses at once, so not on GOMAXPROCS or the machine.
func TestPackConcurrency(t *testing.T) {
	// Several pgzip blocks of compressible but not repetitive data.
	big := make([]byte, 3*gzipBlockSize+12345)
	x := uint32(1)
	for i := range big {
		x = x*1664525 + 1013904223
		big[i] = "abcdefgh"[x>>29]
	}
	fsys := fstest.MapFS{
		"big":       &fstest.MapFile{Data: big, Mode: 0o644},
		"small.txt": &fstest.MapFile{Data: []byte("small"), Mode: 0o644},
	}
	var first []byte
	for _, blocks := range []int{1, 2, 3, 8, 16} {
		var buf bytes.Buffer
		if _, err := pack(t.Context(), fsys, &buf, blocks); err != nil {
			t.Fatalf("pack with %d blocks: %v", blocks, err)
		}
		if first == nil {
			first = buf.Bytes()
			continue
		}
		if !bytes.Equal(buf.Bytes(), first) {
			t.Errorf("pack with %d blocks wrote different bytes than with 1", blocks)
		}
	}
	_, blob := mustPack(t, fsys)
	if !bytes.Equal(blob, first) {
		t.Errorf("Pack with GOMAXPROCS=%d wrote different bytes than with 1 block", runtime.GOMAXPROCS(0))
	}
}

// TestPackGolden pins the bytes: a failure means that every image served
// gets a new digest. Update the digests only when that is intended (a change
// of settings, or of the klauspost/compress version).
func TestPackGolden(t *testing.T) {
	got, _ := mustPack(t, mapTree(baseTree))
	want := Built{
		TarDigest:  mustHash(t, "sha256:a3622ce6614103aa3e6d4931f7dc909bd56b59a094fbd1182c77cb0727347872"),
		GzipDigest: mustHash(t, "sha256:c7f4d2292ad44647f9d72561e0206aecbe64a3cce95068960fcc8a62df6a410f"),
		GzipSize:   475,
		HasEntry:   true,
		Files:      14,
	}
	if got != want {
		t.Errorf("Pack = %+v, want %+v", got, want)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPackDigestChanges(t *testing.T) {
	base, _ := mustPack(t, mapTree(baseTree))
	tests := []struct {
		name   string
		change func(fstest.MapFS)
	}{
		{"content", func(m fstest.MapFS) { m["foo.txt"].Data = []byte("hellO\n") }},
		{"mode", func(m fstest.MapFS) { m["foo.txt"].Mode = 0o640 }},
		{"setuid bit", func(m fstest.MapFS) { m["bin/suid"].Mode &^= fs.ModeSetuid }},
		{"rename", func(m fstest.MapFS) { m["bar.txt"] = m["foo.txt"]; delete(m, "foo.txt") }},
		{"symlink target", func(m fstest.MapFS) { m["bin/link"].Data = []byte("suid") }},
		{"new empty directory", func(m fstest.MapFS) { m["more"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mapTree(baseTree)
			tt.change(m)
			got, _ := mustPack(t, m)
			if got.TarDigest == base.TarDigest || got.GzipDigest == base.GzipDigest {
				t.Errorf("digests unchanged: %+v", got)
			}
		})
	}
}

func TestPackDigests(t *testing.T) {
	got, blob := mustPack(t, os.DirFS(writeTree(t, baseTree)))
	if want := digestOf(blob); got.GzipDigest != want {
		t.Errorf("GzipDigest = %v, want sha256 of the blob %v", got.GzipDigest, want)
	}
	if got.GzipSize != int64(len(blob)) {
		t.Errorf("GzipSize = %d, want %d", got.GzipSize, len(blob))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if want := digestOf(raw); got.TarDigest != want {
		t.Errorf("TarDigest = %v, want sha256 of the tar %v", got.TarDigest, want)
	}
	if zr.Name != "" || zr.Comment != "" || !zr.ModTime.IsZero() || zr.Extra != nil {
		t.Errorf("gzip header has name %q, comment %q, mtime %v, extra %q; want none", zr.Name, zr.Comment, zr.ModTime, zr.Extra)
	}
	// go-containerregistry computes the same digests from the blob.
	if h, _, err := v1.SHA256(bytes.NewReader(raw)); err != nil || h != got.TarDigest {
		t.Errorf("v1.SHA256(tar) = %v, %v; want %v", h, err, got.TarDigest)
	}
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func TestPackEntries(t *testing.T) {
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("f", 120)
	tree := append(slices.Clone(baseTree),
		node{name: long, data: "long name"},
		node{name: PlatformsDir + "/linux_amd64/x", data: "not packed by Pack"},
	)
	built, blob := mustPack(t, os.DirFS(writeTree(t, tree)))
	entries := readLayer(t, blob)

	wantNames := []string{
		".towerreg/", ".towerreg/entry",
		"a/", "a/b", "a-b",
		"bin/", "bin/link", "bin/sgid", "bin/suid", "bin/tool", "bin/up",
		strings.Repeat("d", 120) + "/", long,
		"empty/", "foo.txt", "tmp/",
	}
	if got := entryNames(entries); !slices.Equal(got, wantNames) {
		t.Fatalf("entries:\n got %q\nwant %q", got, wantNames)
	}
	if built.Files != len(wantNames) {
		t.Errorf("Files = %d, want %d", built.Files, len(wantNames))
	}

	want := map[string]struct {
		typ  byte
		mode int64
		data string // content or link target
	}{
		"foo.txt":    {tar.TypeReg, 0o644, "hello\n"},
		"bin/":       {tar.TypeDir, 0o755, ""},
		"bin/tool":   {tar.TypeReg, 0o755, "#!/bin/sh\necho tool\n"},
		"bin/suid":   {tar.TypeReg, 0o4755, "suid"},
		"bin/sgid":   {tar.TypeReg, 0o2750, "sgid"},
		"tmp/":       {tar.TypeDir, 0o1777, ""},
		"empty/":     {tar.TypeDir, 0o700, ""},
		"bin/link":   {tar.TypeSymlink, 0o777, "tool"},
		"bin/up":     {tar.TypeSymlink, 0o777, "../foo.txt"},
		long:         {tar.TypeReg, 0o644, "long name"},
		".towerreg/": {tar.TypeDir, 0o755, ""},
	}
	for _, e := range entries {
		h := e.hdr
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want 0:0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v, want mtime 0 only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") {
			t.Errorf("%s: not a plain relative name", h.Name)
		}
		if len(h.PAXRecords) > 0 && len(h.Name) <= 100 {
			t.Errorf("%s: PAX records %v, want none for a short name", h.Name, h.PAXRecords)
		}
		w, ok := want[h.Name]
		if !ok {
			continue
		}
		got := e.data
		if h.Typeflag == tar.TypeSymlink {
			got = h.Linkname
		}
		if h.Typeflag != w.typ || h.Mode != w.mode || got != w.data {
			t.Errorf("%s: type %c mode %#o data %q, want type %c mode %#o data %q", h.Name, h.Typeflag, h.Mode, got, w.typ, w.mode, w.data)
		}
	}
}

func TestPackHasEntry(t *testing.T) {
	tests := []struct {
		name string
		tree []node
		want bool
	}{
		{"executable", []node{{name: ".towerreg/entry", mode: 0o755}}, true},
		{"owner executable only", []node{{name: ".towerreg/entry", mode: 0o700}}, true},
		{"not executable", []node{{name: ".towerreg/entry", mode: 0o644}}, false},
		{"absent", []node{{name: "foo.txt"}}, false},
		{"directory", []node{{name: ".towerreg/entry/x", mode: 0o755}}, false},
		{"symlink", []node{{name: "e", mode: 0o755}, {name: ".towerreg/entry", mode: fs.ModeSymlink, data: "../e"}}, false},
		{"elsewhere", []node{{name: "towerreg/entry", mode: 0o755}}, false},
		{"in platforms dir", []node{{name: PlatformsDir + "/linux_amd64/.towerreg/entry", mode: 0o755}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := mustPack(t, os.DirFS(writeTree(t, tt.tree)))
			if got.HasEntry != tt.want {
				t.Errorf("HasEntry = %v, want %v", got.HasEntry, tt.want)
			}
		})
	}
}

// failFS is an FS whose file bad cannot be opened, or opens shorter than
// its listing says.
type failFS struct {
	fstest.MapFS
	bad     string
	shorten bool
}

func (f failFS) Open(name string) (fs.File, error) {
	if name == f.bad && !f.shorten {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	file, err := f.MapFS.Open(name)
	if err != nil || name != f.bad {
		return file, err
	}
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	return shortFile{file, io.LimitReader(file, info.Size()/2)}, nil
}

// shortFile reports its size but reads half of it, as a file truncated
// between Stat and Read would.
type shortFile struct {
	fs.File
	r io.Reader
}

func (s shortFile) Read(b []byte) (int, error) { return s.r.Read(b) }

func TestPackRefuses(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("ok"), Mode: 0o644}
	tests := []struct {
		name string
		fsys fs.FS
		path string // the path the error must name
		is   error  // the error it must wrap, if any
	}{
		{"socket", fstest.MapFS{"a": file, "run/sock": {Mode: fs.ModeSocket | 0o755}}, "run/sock", ErrFileType},
		{"named pipe", fstest.MapFS{"fifo": {Mode: fs.ModeNamedPipe | 0o644}}, "fifo", ErrFileType},
		{"block device", fstest.MapFS{"dev/sda": {Mode: fs.ModeDevice | 0o660}}, "dev/sda", ErrFileType},
		{"char device", fstest.MapFS{"dev/null": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}, "dev/null", ErrFileType},
		{"absolute symlink", fstest.MapFS{"etc/pw": {Mode: fs.ModeSymlink, Data: []byte("/etc/passwd")}}, "etc/pw", ErrLinkEscapes},
		{"symlink above root", fstest.MapFS{"a/l": {Mode: fs.ModeSymlink, Data: []byte("../../x")}}, "a/l", ErrLinkEscapes},
		{"symlink above root via subdir", fstest.MapFS{"a/l": {Mode: fs.ModeSymlink, Data: []byte("b/../../../x")}}, "a/l", ErrLinkEscapes},
		{"symlink to root's parent", fstest.MapFS{"l": {Mode: fs.ModeSymlink, Data: []byte("..")}}, "l", ErrLinkEscapes},
		{"unreadable", failFS{MapFS: fstest.MapFS{"a": file, "b/secret": file}, bad: "b/secret"}, "b/secret", fs.ErrPermission},
		{"shrinks while packed", failFS{MapFS: fstest.MapFS{"big": {Data: make([]byte, 100), Mode: 0o644}}, bad: "big", shorten: true}, "big", nil},
		{"unix socket on disk", socketDir(t), "s", ErrFileType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fsys == nil {
				t.Skip("cannot create the file")
			}
			_, err := Pack(t.Context(), tt.fsys, io.Discard)
			if err == nil {
				t.Fatal("Pack succeeded, want an error")
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != tt.path {
				t.Errorf("Pack error %q does not name %s", err, tt.path)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Pack error %q is not %q", err, tt.is)
			}
		})
	}
}

// socketDir returns a directory holding a unix socket "s", or nil.
func socketDir(t *testing.T) fs.FS {
	// Socket paths are short; t.TempDir's may be too long.
	dir, err := os.MkdirTemp("", "tr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		return nil
	}
	t.Cleanup(func() { l.Close() })
	return os.DirFS(dir)
}

func TestPackUnreadableOnDisk(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	dir := writeTree(t, []node{{name: "secret", mode: 0o000}})
	_, err := Pack(t.Context(), os.DirFS(dir), io.Discard)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "secret") {
		t.Errorf("Pack = %v, want a permission error naming secret", err)
	}
}

func TestPackCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Pack(ctx, mapTree(baseTree), io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack = %v, want context.Canceled", err)
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(b)
	return len(b), nil
}

func TestPackWriteError(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*gzipBlockSize/16)
	fsys := fstest.MapFS{"big": {Data: big, Mode: 0o644}}
	before := runtime.NumGoroutine()
	for _, n := range []int{0, 5, 100, 4096} {
		if _, err := Pack(t.Context(), fsys, &failWriter{n: n}); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("Pack after %d bytes = %v, want the write error", n, err)
		}
	}
	// pgzip leaves a goroutine behind a failed write unless told otherwise.
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before the failed packs, %d after", before, runtime.NumGoroutine())
		}
	}
}

func TestPackNotADirectory(t *testing.T) {
	fsys, err := fs.Sub(fstest.MapFS{"f": {Data: []byte("x")}}, "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pack(t.Context(), fsys, io.Discard); err == nil {
		t.Error("Pack of a file succeeded, want an error")
	}
}
