package proxy

import (
	"strings"
	"testing"
)

// FuzzParseRepo: any name either is refused as ErrNameInvalid or resolves
// to a repository whose path has no empty, "." or ".." component (it goes
// into upstream URLs as it is) and that resolves to itself again.
func FuzzParseRepo(f *testing.F) {
	for _, s := range []string{"busybox", "library/busybox", "quay.io/nextflow/bash", "127.0.0.1_5000/test/x",
		"[::1]:5000/a", "localhost/foo", "a/../b", "..", "a//b", "Quay.IO/x", "x/%2e%2e/y", "wt/abc/x"} {
		f.Add(s, "docker.io")
	}
	f.Add("team/app", "registry.example:5000")
	f.Fuzz(func(t *testing.T, name, def string) {
		r, err := ParseRepo(name, def)
		if err != nil {
			return
		}
		if r.Registry == "" || r.Path == "" {
			t.Fatalf("%q: empty part in %+v", name, r)
		}
		for _, c := range strings.Split(r.Path, "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("%q: path %q has component %q", name, r.Path, c)
			}
		}
		if strings.ContainsAny(r.Path, "?#% \\") || strings.ContainsAny(r.Registry, "/?#@ \\") {
			t.Fatalf("%q: %+v has characters that would change an upstream URL", name, r)
		}
		again, err := ParseRepo(r.String(), def)
		if err != nil || again != r {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v: not stable", name, r, r.String(), again, err)
		}
	})
}

// FuzzParseRef: a reference that parses prints as it was written, and is
// a digest exactly when it is a sha256 one.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"latest", "v1.2.3", "sha256:" + strings.Repeat("a", 64), "sha256-" + strings.Repeat("b", 64),
		"sha512:" + strings.Repeat("c", 128), "", "-x", strings.Repeat("t", 129), "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("%q parsed to %+v, which prints %q", s, r, r.String())
		}
		if r.IsDigest() != strings.HasPrefix(s, "sha256:") {
			t.Fatalf("%q: IsDigest %v", s, r.IsDigest())
		}
		if !r.IsDigest() && (len(s) > 128 || strings.ContainsAny(s, "/:?# ")) {
			t.Fatalf("accepted tag %q", s)
		}
	})
}

// FuzzParseDigest: only a sha256 of 64 lower-case hex digits parses, and
// it prints back as it was written.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64), "sha256:",
		"sha512:" + strings.Repeat("c", 128), "sha256:../../etc/passwd", "md5:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if d.String() != s || d.Algorithm != "sha256" || len(d.Hex) != 64 || strings.Trim(d.Hex, "0123456789abcdef") != "" {
			t.Fatalf("%q parsed to %+v", s, d)
		}
	})
}
