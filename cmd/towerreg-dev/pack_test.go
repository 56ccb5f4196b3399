package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tree is a layer directory: name -> content; a name ending in "*" is an
// executable.
type tree map[string]string

// write creates t under a new directory, in the order of names, with every
// mtime set to mtime.
func (tr tree) write(t *testing.T, names []string, mtime time.Time) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		data := tr[name]
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func (tr tree) names(reverse bool) []string {
	var ns []string
	for n := range tr {
		ns = append(ns, n)
	}
	// Map order is random already; sorting both ways makes the two
	// creation orders certainly differ.
	slices.Sort(ns)
	if reverse {
		slices.Reverse(ns)
	}
	return ns
}

var layerTree = tree{
	"foo.txt":     "hello\n",
	"bin/tool*":   "#!/bin/sh\n",
	"etc/a/b.txt": "deep\n",
	".platforms/linux_amd64/.towerreg/entry*": "amd64 entry",
}

// runPack runs `towerreg-dev pack args...` and decodes what it printed.
func runPack(t *testing.T, args ...string) (packed, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), append([]string{"pack"}, args...), &stdout, &stderr)
	if err != nil {
		return packed{}, err
	}
	var p packed
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("pack printed %q: %v", stdout.String(), err)
	}
	return p, nil
}

// checkFile checks what pack printed against the file it wrote, and
// returns the tar's entry names and contents.
func checkFile(t *testing.T, p packed, wantPath string) map[string]string {
	t.Helper()
	u, err := url.Parse(p.Location)
	if err != nil || u.Scheme != "file" {
		t.Fatalf("location %q is not a file:// URL", p.Location)
	}
	if u.Path != wantPath {
		t.Fatalf("location path %q, want %q", u.Path, wantPath)
	}
	blob, err := os.ReadFile(u.Path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(blob); p.GzipDigest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("gzipDigest %s is not the sha256 of the file", p.GzipDigest)
	}
	if p.GzipSize != int64(len(blob)) {
		t.Errorf("gzipSize %d, file has %d bytes", p.GzipSize, len(blob))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); p.TarDigest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("tarDigest %s is not the sha256 of the uncompressed tar", p.TarDigest)
	}
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
}

func TestPack(t *testing.T) {
	epoch1 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	epoch2 := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	ref := layerTree.write(t, layerTree.names(false), epoch1)
	refOut := t.TempDir()
	want, err := runPack(t, "--layer", ref, "--out", refOut)
	if err != nil {
		t.Fatal(err)
	}
	files := checkFile(t, want, filepath.Join(refOut, packName))
	if files["foo.txt"] != "hello\n" || files["etc/a/b.txt"] != "deep\n" {
		t.Fatalf("layer holds %v", files)
	}
	if _, ok := files[".towerreg/entry"]; ok {
		t.Fatal("the common layer holds an overlay's file")
	}

	changed := tree{}
	for k, v := range layerTree {
		changed[k] = v
	}
	changed["etc/a/b.txt"] = "deeper\n"

	tests := []struct {
		name string
		dir  string
		args []string
		same bool // same digests as the reference
	}{
		{"same tree again", ref, nil, true},
		{"other mtimes, other file order", layerTree.write(t, layerTree.names(true), epoch2), nil, true},
		{"one file changed", changed.write(t, changed.names(false), epoch1), nil, false},
		{"the amd64 platform", ref, []string{"--platform", "linux/amd64"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			got, err := runPack(t, append([]string{"--layer", tt.dir, "--out", out}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, got, filepath.Join(out, packName))
			same := got.GzipDigest == want.GzipDigest && got.TarDigest == want.TarDigest && got.GzipSize == want.GzipSize
			if same != tt.same {
				t.Errorf("digests %+v vs the reference %+v: same = %v, want %v", got, want, same, tt.same)
			}
		})
	}

	t.Run("platform overlay merged", func(t *testing.T) {
		out := t.TempDir()
		got, err := runPack(t, "--layer", ref, "--out", out, "--platform", "linux/amd64")
		if err != nil {
			t.Fatal(err)
		}
		files := checkFile(t, got, filepath.Join(out, packName))
		if files[".towerreg/entry"] != "amd64 entry" || files["foo.txt"] != "hello\n" {
			t.Fatalf("linux/amd64 layer holds %v", files)
		}
	})

	t.Run("default layer into the current directory", func(t *testing.T) {
		out := t.TempDir()
		t.Chdir(out)
		got, err := runPack(t)
		if err != nil {
			t.Fatal(err)
		}
		files := checkFile(t, got, filepath.Join(out, packName))
		if _, ok := files["foo.txt"]; !ok {
			t.Fatalf("the default layer holds %v, want foo.txt", files)
		}
	})
}

func TestPackErrors(t *testing.T) {
	escape := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(escape, "link")); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing layer directory", []string{"--layer", filepath.Join(t.TempDir(), "nope")}, "no such file"},
		{"layer is a file", []string{"--layer", notDir}, "not a directory"},
		{"symlink out of the layer", []string{"--layer", escape}, "outside the layer directory"},
		{"missing out directory", []string{"--out", filepath.Join(t.TempDir(), "nope")}, "no such file"},
		{"bad platform", []string{"--platform", "amd64"}, "not os/arch"},
		{"stray argument", []string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runPack(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("pack %v: error %v, want one mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}
