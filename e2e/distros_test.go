package e2e

import (
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The network here reaches no Docker Hub, so the distributions the FUSE
// entry must work in are stood in for by images built from this machine's
// own files: what matters to the entry is the userland it chains to.
const (
	// repoGlibc is like ubuntu or debian: dynamic glibc programs, bash as
	// its Cmd, no busybox.
	repoGlibc = "test/glibc:latest"
	// repoMusl is like alpine: busybox for the shell, and a program
	// linked dynamically against musl.
	repoMusl = "test/musl:latest"
)

// lddLine is one library of `ldd` output: "name => /path (addr)" or
// "/path (addr)" for the loader.
var lddLine = regexp.MustCompile(`(?m)^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// withLibraries lists programs with the shared libraries and the loader
// each needs, as ldd resolves them here, at the paths the programs ask for.
func withLibraries(tb testing.TB, programs ...string) []string {
	tb.Helper()
	files := slices.Clone(programs)
	for _, p := range programs {
		out, err := exec.Command("ldd", p).CombinedOutput()
		if err != nil {
			tb.Fatalf("ldd %s: %v\n%s", p, err, out)
		}
		for _, m := range lddLine.FindAllStringSubmatch(string(out), -1) {
			if !slices.Contains(files, m[1]) {
				files = append(files, m[1])
			}
		}
	}
	return files
}

// fileEntries makes tar entries of host files at their own paths (the
// targets of symlinks, read whole), with the directories above them.
func fileEntries(tb testing.TB, files ...string) []tarEntry {
	tb.Helper()
	var entries []tarEntry
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(strings.TrimPrefix(f, "/")); d != "."; d = path.Dir(d) {
			parents = append(parents, d)
		}
		slices.Reverse(parents)
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				entries = append(entries, tarEntry{Name: d, Mode: 0o755, Dir: true})
			}
		}
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		entries = append(entries, tarEntry{Name: strings.TrimPrefix(f, "/"), Mode: 0o755, Body: b})
	}
	return entries
}

// glibcImage holds bash, ls and cat from this machine, with their glibc.
func glibcImage(tb testing.TB) v1.Image {
	tb.Helper()
	var progs []string
	for _, p := range []string{"bash", "ls", "cat"} {
		progs = append(progs, need(tb, p))
	}
	// The programs keep the paths they have here, which are on the PATH
	// the image sets.
	l, err := tarLayer(types.DockerLayer, fileEntries(tb, withLibraries(tb, progs...)...)...)
	if err != nil {
		tb.Fatal(err)
	}
	img, err := newImage(types.DockerManifestSchema2, amd64, v1.Config{Cmd: []string{"bash"}, Env: []string{pathEnv}}, l)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// mcat is a cat linked against musl: it proves that the image's own
// dynamic program runs after the entry.
const mcatSource = `#include <stdio.h>
int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		if (!f) { perror(argv[i]); return 1; }
		int c;
		while ((c = getc(f)) != EOF) putchar(c);
		fclose(f);
	}
	return 0;
}
`

// muslImage is busybox for the shell, as alpine has, and mcat, linked
// dynamically against musl with its loader.
func muslImage(tb testing.TB) v1.Image {
	tb.Helper()
	cc := need(tb, "musl-gcc")
	dir := tb.TempDir()
	src, bin := filepath.Join(dir, "mcat.c"), filepath.Join(dir, "mcat")
	if err := os.WriteFile(src, []byte(mcatSource), 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		tb.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	loader := interpreter(tb, bin)
	if !strings.Contains(loader, "musl") {
		tb.Fatalf("mcat asks for the loader %q, not musl's", loader)
	}
	bb, err := os.ReadFile(need(tb, "busybox"))
	if err != nil {
		tb.Fatal(err)
	}
	mcat, err := os.ReadFile(bin)
	if err != nil {
		tb.Fatal(err)
	}
	// The loader is a symlink to musl's libc; the image gets the file.
	ld, err := os.ReadFile(loader)
	if err != nil {
		tb.Fatal(err)
	}
	entries := []tarEntry{
		{Name: "bin", Mode: 0o755, Dir: true},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
		{Name: "lib", Mode: 0o755, Dir: true},
		{Name: strings.TrimPrefix(loader, "/"), Mode: 0o755, Body: ld},
		{Name: "usr", Mode: 0o755, Dir: true},
		{Name: "usr/bin", Mode: 0o755, Dir: true},
		{Name: "usr/bin/mcat", Mode: 0o755, Body: mcat},
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo"} {
		entries = append(entries, tarEntry{Name: "bin/" + applet, Mode: 0o777, Link: "busybox"})
	}
	l, err := tarLayer(types.OCILayer, entries...)
	if err != nil {
		tb.Fatal(err)
	}
	img, err := newImage(types.OCIManifestSchema1, amd64, v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{pathEnv}}, l)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// interpreter is the loader a dynamic ELF program asks for.
func interpreter(tb testing.TB, bin string) string {
	tb.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				tb.Fatal(err)
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	tb.Fatalf("%s is not a dynamic program", bin)
	return ""
}
