package e2e

// Tests of the harness against the upstream registry alone, no daemon:
// they prove the baseline that proxy_test.go compares with. If one of these
// fails, the machine or the harness is broken, not tower-reg.

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestRegistryPushPull reads every test image back from the upstream with
// go-containerregistry: same digests as pushed.
func TestRegistryPushPull(t *testing.T) {
	u, fx := startUpstreamWithImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		repo string
		want v1.Hash
	}{
		{repoBusybox, digestOf(t, fx.Busybox)},
		{repoEcho, digestOf(t, fx.Echo)},
		{repoNoShell, digestOf(t, fx.NoShell)},
		{repoMulti, digestOf(t, fx.Multi)},
	} {
		desc, err := remote.Get(u.tag(t, tt.repo), remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s: %v", tt.repo, err)
		}
		if desc.Digest != tt.want {
			t.Errorf("%s: upstream serves %s, pushed %s", tt.repo, desc.Digest, tt.want)
		}
	}
}

// TestRegistrySkopeoCopy copies from the upstream into OCI layouts and
// reads them back.
func TestRegistrySkopeoCopy(t *testing.T) {
	sk := newSkopeo(t)
	u, fx := startUpstreamWithImages(t)

	t.Run("busybox", func(t *testing.T) {
		// Docker schema 2 to an OCI layout: skopeo converts the manifest,
		// the layer blob stays as it is.
		img := layoutImage(t, sk.copyToOCI(t, u.ref(repoBusybox), false))
		if got, want := layerDigests(t, img), layerDigests(t, fx.Busybox); !slices.Equal(got, want) {
			t.Errorf("layers %v, want %v", got, want)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != "amd64" || strings.Join(cf.Config.Cmd, " ") != "sh" {
			t.Errorf("config: arch %q cmd %q", cf.Architecture, cf.Config.Cmd)
		}
		if f := layerFiles(t, mustLayer(t, img, 0))["bin/busybox"]; len(f.Body) == 0 {
			t.Error("the copied layer has no bin/busybox")
		}
	})

	t.Run("multi --all", func(t *testing.T) {
		// OCI to OCI: the images keep their digests. The index is written
		// anew by skopeo (which 1.9 does even with --preserve-digests, and
		// then refuses), so only its children are compared.
		_, imgs := layoutIndex(t, sk.copyToOCI(t, u.ref(repoMulti), true))
		for platform, want := range map[string]v1.Image{"linux/amd64": fx.MultiAMD64, "linux/arm64/v8": fx.MultiARM64} {
			img, ok := imgs[platform]
			if !ok {
				t.Errorf("no %s image; have %v", platform, slices.Sorted(maps.Keys(imgs)))
				continue
			}
			if got, want := digestOf(t, img), digestOf(t, want); got != want {
				t.Errorf("%s: %s, want %s", platform, got, want)
			}
		}
		if f := layerFiles(t, mustLayer(t, imgs["linux/arm64/v8"], 0))["hello.txt"]; string(f.Body) != arm64Text {
			t.Errorf("arm64 hello.txt = %q, want %q", f.Body, arm64Text)
		}
	})
}

// TestRegistrySkopeoInspect checks skopeo's view of the images.
func TestRegistrySkopeoInspect(t *testing.T) {
	sk := newSkopeo(t)
	u, _ := startUpstreamWithImages(t)

	var info struct {
		Architecture string
		Os           string
		Layers       []string
	}
	if err := json.Unmarshal(sk.inspect(t, u.ref(repoEcho), false), &info); err != nil {
		t.Fatal(err)
	}
	if info.Architecture != "amd64" || info.Os != "linux" || len(info.Layers) != 1 {
		t.Errorf("inspect %s: %+v", repoEcho, info)
	}

	var raw struct{ MediaType types.MediaType }
	if err := json.Unmarshal(sk.inspect(t, u.ref(repoMulti), true), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.MediaType != types.OCIImageIndex {
		t.Errorf("inspect --raw %s: media type %q, want %s", repoMulti, raw.MediaType, types.OCIImageIndex)
	}
}

// TestRegistryCraneValidate runs crane validate --remote on every image.
func TestRegistryCraneValidate(t *testing.T) {
	cr := newCrane(t)
	u, _ := startUpstreamWithImages(t)
	for _, repo := range []string{repoBusybox, repoEcho, repoNoShell, repoMulti} {
		t.Run(repo, func(t *testing.T) {
			if out := cr.validate(t, u.ref(repo)); !strings.Contains(out, "PASS") {
				t.Errorf("crane validate: %q, want PASS", out)
			}
		})
	}
}

// podmanCase is one `podman run`: image, arguments, expected stdout
// (trimmed).
type podmanCase struct {
	name  string
	repo  string
	args  []string
	want  string
	check func(t *testing.T, out string) // instead of want
}

// TestRegistryPodmanRun runs the test images straight from the upstream:
// the outputs that the proxy must reproduce.
func TestRegistryPodmanRun(t *testing.T) {
	pm := newPodman(t)
	u, _ := startUpstreamWithImages(t)
	for _, tt := range []podmanCase{
		{name: "busybox echo", repo: repoBusybox, args: []string{"echo", "hello from podman"}, want: "hello from podman"},
		{name: "busybox shell", repo: repoBusybox, args: []string{"sh", "-c", "echo $((6*7))"}, want: "42"},
		{name: "busybox hostname", repo: repoBusybox, args: []string{"cat", "/etc/hostname"}, check: func(t *testing.T, out string) {
			if strings.TrimSpace(out) == "" {
				t.Error("empty /etc/hostname")
			}
		}},
		{name: "echo entrypoint and cmd", repo: repoEcho, want: echoOutput},
		{name: "echo entrypoint and args", repo: repoEcho, args: []string{"bye"}, want: "entry says: bye"},
		{name: "noshell", repo: repoNoShell, want: noShellOutput},
		{name: "multi picks amd64", repo: repoMulti, args: []string{"echo", "multi"}, want: "multi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := pm.run(t, u.ref(tt.repo), tt.args...)
			if tt.check != nil {
				tt.check(t, out)
			} else if got := strings.TrimSpace(out); got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRegistryErrors proves checkOCIError on distribution's own answers,
// the codes that the proxy passes on for an upstream miss.
func TestRegistryErrors(t *testing.T) {
	u, _ := startUpstreamWithImages(t)
	for _, tt := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"unknown tag", "/v2/test/busybox/manifests/nope", http.StatusNotFound, "MANIFEST_UNKNOWN"},
		// distribution 2.8 says MANIFEST_UNKNOWN for a manifest of an
		// unknown repository, NAME_UNKNOWN for its tag list.
		{"unknown repo manifest", "/v2/test/nope/manifests/latest", http.StatusNotFound, "MANIFEST_UNKNOWN"},
		{"unknown repo tags", "/v2/test/nope/tags/list", http.StatusNotFound, "NAME_UNKNOWN"},
		{"unknown blob", "/v2/test/busybox/blobs/" + zeroDigest, http.StatusNotFound, "BLOB_UNKNOWN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, "http://"+u.Host+tt.path)
			checkOCIError(t, http.MethodGet, resp, body, tt.status, tt.code)
		})
	}
}

// zeroDigest is a well-formed digest of no blob.
const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
