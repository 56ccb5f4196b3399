package proxy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRepo(t *testing.T) {
	tests := []struct {
		name, def string
		want      Repo
		err       error
	}{
		{"busybox", "docker.io", Repo{"index.docker.io", "library/busybox"}, nil},
		{"library/busybox", "docker.io", Repo{"index.docker.io", "library/busybox"}, nil},
		{"docker.io/busybox", "docker.io", Repo{"index.docker.io", "library/busybox"}, nil},
		{"nextflow/bash", "docker.io", Repo{"index.docker.io", "nextflow/bash"}, nil},
		{"quay.io/nextflow/bash", "docker.io", Repo{"quay.io", "nextflow/bash"}, nil},
		{"localhost/foo", "docker.io", Repo{"localhost", "foo"}, nil},
		{"127.0.0.1:5000/test/busybox", "docker.io", Repo{"127.0.0.1:5000", "test/busybox"}, nil},
		{"[::1]:5000/a", "docker.io", Repo{"[::1]:5000", "a"}, nil},
		{"127.0.0.1_5000/test/busybox", "docker.io", Repo{"127.0.0.1:5000", "test/busybox"}, nil},
		{"localhost_5000/x", "docker.io", Repo{"localhost:5000", "x"}, nil},
		{"registry.example_8443/x", "docker.io", Repo{"registry.example:8443", "x"}, nil},
		{"my_app/x", "docker.io", Repo{"index.docker.io", "my_app/x"}, nil},
		{"team_1/x", "docker.io", Repo{"index.docker.io", "team_1/x"}, nil},
		{"team/app", "registry.example:5000", Repo{"registry.example:5000", "team/app"}, nil},
		{"a/../b", "docker.io", Repo{}, ErrNameInvalid},
		{"..", "docker.io", Repo{}, ErrNameInvalid},
		{"../x", "docker.io", Repo{}, ErrNameInvalid},
		{"./x", "docker.io", Repo{}, ErrNameInvalid},
		{"a..b/x", "docker.io", Repo{}, ErrNameInvalid},
		{"-bad.io/x", "docker.io", Repo{}, ErrNameInvalid},
		{"quay.io:99999999/x", "docker.io", Repo{}, ErrNameInvalid},
		{"Library/busybox", "docker.io", Repo{}, ErrNameInvalid},
		{"Quay.IO/x", "docker.io", Repo{}, ErrNameInvalid},
		{"a//b", "docker.io", Repo{}, ErrNameInvalid},
		{"", "docker.io", Repo{}, ErrNameInvalid},
		{strings.Repeat("a", 256), "docker.io", Repo{}, ErrNameInvalid},
		{"quay.io/", "docker.io", Repo{}, ErrNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRepo(tt.name, tt.def)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseRepo(%q) error = %v, want %v", tt.name, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("ParseRepo(%q) = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

func TestRepoHost(t *testing.T) {
	if got := (Repo{Registry: "index.docker.io", Path: "library/x"}).Host(); got != "registry-1.docker.io" {
		t.Fatalf("docker hub host = %q", got)
	}
	if got := (Repo{Registry: "quay.io", Path: "x"}).Host(); got != "quay.io" {
		t.Fatalf("quay host = %q", got)
	}
}

func TestParseRef(t *testing.T) {
	good := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		in      string
		tag     string
		digest  bool
		wantErr error
	}{
		{"latest", "latest", false, nil},
		{"v1.2_3-rc", "v1.2_3-rc", false, nil},
		{good, "", true, nil},
		{"sha256:zz", "", false, ErrDigestInvalid},
		{"sha256:" + strings.Repeat("a", 63), "", false, ErrDigestInvalid},
		{"md5:" + strings.Repeat("a", 32), "", false, ErrDigestInvalid},
		{"-bad", "", false, ErrNameInvalid},
		{strings.Repeat("t", 129), "", false, ErrNameInvalid},
		{"", "", false, ErrNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRef(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseRef(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.Tag != tt.tag || r.IsDigest() != tt.digest {
				t.Fatalf("ParseRef(%q) = %+v", tt.in, r)
			}
			if r.String() != tt.in {
				t.Fatalf("String() = %q, want %q", r.String(), tt.in)
			}
		})
	}
}

func TestDigestTag(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	tests := []struct {
		tag string
		ok  bool
	}{
		{"sha256-" + hex, true},
		{"sha256-" + strings.ToUpper(hex), false}, // digests are lowercase
		{"sha256-" + hex[:63], false},
		{"sha256-" + hex + "0", false},
		{"sha512-" + hex, false},
		{"latest", false},
		{"sha256-", false},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			d, ok := digestTag(tt.tag)
			if ok != tt.ok {
				t.Fatalf("digestTag(%q) ok = %v, want %v", tt.tag, ok, tt.ok)
			}
			if ok && d.String() != "sha256:"+hex {
				t.Errorf("digest %s", d)
			}
		})
	}
}
