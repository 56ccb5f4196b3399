package e2e

// End-to-end tests through towerreg-dev: real clients pull the test images
// from the upstream through the daemon and must get them with the layer
// appended, digests that verify, and the same behaviour when run.
//
// Clients name the upstream through --default-registry: a name like
// 127.0.0.1:PROXY/127.0.0.1:UP/test/busybox is valid for the daemon but not
// for any client, because ':' cannot appear in a path component of an image
// reference (docker, podman, skopeo and crane all refuse it). The
// host-in-path form is tested over raw HTTP instead.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the default layer adds.
const (
	fooPath    = "foo.txt"
	fooContent = "hello from the tower-reg layer"
	entryPath  = ".towerreg/entry"
	entryVar   = "TOWERREG_ENTRYPOINT"
)

// startProxy starts an upstream with the test images and a daemon whose
// default registry is that upstream.
func startProxy(tb testing.TB) (*upstream, *fixtures, *towerreg) {
	tb.Helper()
	u, fx := startUpstreamWithImages(tb)
	return u, fx, startDaemon(tb, "--default-registry", u.Host)
}

// TestProxyStarts checks the daemon's API root.
func TestProxyStarts(t *testing.T) {
	d := startDaemon(t)
	resp, body := do(t, http.MethodGet, d.url("/v2/"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %s", resp.Status)
	}
	if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Errorf("Docker-Distribution-API-Version %q, want registry/2.0", v)
	}
	if !json.Valid(body) {
		t.Errorf("GET /v2/ body is not JSON: %q", body)
	}
}

// checkAppended checks that proxied is direct with one layer appended: the
// same layers first, then one holding foo.txt (and the entry binary when
// withEntry), and a config that lists the new layer.
func checkAppended(t *testing.T, direct, proxied v1.Image, withEntry bool) {
	t.Helper()
	dl, pl := layerDigests(t, direct), layerDigests(t, proxied)
	if len(pl) != len(dl)+1 {
		t.Fatalf("proxied image has %d layers, upstream %d: want one more", len(pl), len(dl))
	}
	if !slices.Equal(pl[:len(dl)], dl) {
		t.Errorf("proxied layers %v do not start with the upstream layers %v", pl, dl)
	}
	files := layerFiles(t, mustLayer(t, proxied, len(pl)-1))
	if f, ok := files[fooPath]; !ok {
		t.Errorf("the appended layer has no %s; it has %v", fooPath, slices.Sorted(maps.Keys(files)))
	} else if got := strings.TrimSpace(string(f.Body)); got != fooContent {
		t.Errorf("%s = %q, want %q", fooPath, got, fooContent)
	}
	if withEntry {
		if f, ok := files[entryPath]; !ok || f.Type != tar.TypeReg || f.Mode&0o111 == 0 {
			t.Errorf("the appended layer has no executable %s (found %v, mode %o)", entryPath, ok, f.Mode)
		}
	}
	dc, err := direct.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := proxied.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.RootFS.DiffIDs) != len(pl) {
		t.Errorf("proxied config has %d diff_ids for %d layers", len(pc.RootFS.DiffIDs), len(pl))
	}
	if len(dc.History) > 0 && len(pc.History) != len(dc.History)+1 {
		t.Errorf("proxied config has %d history entries, upstream %d: want one more", len(pc.History), len(dc.History))
	}
	if pc.OS != dc.OS || pc.Architecture != dc.Architecture || pc.Variant != dc.Variant {
		t.Errorf("platform %s/%s/%s, upstream %s/%s/%s", pc.OS, pc.Architecture, pc.Variant, dc.OS, dc.Architecture, dc.Variant)
	}
}

// TestProxySkopeoCopy copies each image directly and through the proxy;
// skopeo checks every digest on the way, and the copies must differ by
// exactly the appended layer.
func TestProxySkopeoCopy(t *testing.T) {
	sk := newSkopeo(t)
	u, _, d := startProxy(t)

	for _, repo := range []string{repoBusybox, repoEcho, repoNoShell} {
		t.Run(repo, func(t *testing.T) {
			direct := layoutImage(t, sk.copyToOCI(t, u.ref(repo), false))
			proxied := layoutImage(t, sk.copyToOCI(t, d.ref(repo), false))
			checkAppended(t, direct, proxied, true)
		})
	}

	// The upstream named in the path, its port spelled with '_' since
	// Docker's grammar allows no ':' there: same image as by default.
	t.Run("host in path", func(t *testing.T) {
		byDefault := layoutImage(t, sk.copyToOCI(t, d.ref(repoBusybox), false))
		inPath := layoutImage(t, sk.copyToOCI(t, d.ref(strings.Replace(u.Host, ":", "_", 1)+"/"+repoBusybox), false))
		if a, b := digestOf(t, byDefault), digestOf(t, inPath); a != b {
			t.Fatalf("by default registry %s, by host in path %s: want the same rewrite", a, b)
		}
	})

	t.Run(repoMulti+" --all", func(t *testing.T) {
		_, direct := layoutIndex(t, sk.copyToOCI(t, u.ref(repoMulti), true))
		_, proxied := layoutIndex(t, sk.copyToOCI(t, d.ref(repoMulti), true))
		if !slices.Equal(slices.Sorted(maps.Keys(proxied)), slices.Sorted(maps.Keys(direct))) {
			t.Fatalf("proxied platforms %v, upstream %v", slices.Sorted(maps.Keys(proxied)), slices.Sorted(maps.Keys(direct)))
		}
		for platform, img := range direct {
			t.Run(platform, func(t *testing.T) {
				// The entry binary is checked where it runs; whether an
				// arm64 one is embedded depends on `make layer`.
				checkAppended(t, img, proxied[platform], platform == amd64.String())
			})
		}
	})

	t.Run("entrypoint chain in the config", func(t *testing.T) {
		// layer/README.md: Entrypoint becomes the entry, the original goes
		// to TOWERREG_ENTRYPOINT as a JSON array, Cmd stays.
		cf, err := layoutImage(t, sk.copyToOCI(t, d.ref(repoEcho), false)).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"/" + entryPath}; !slices.Equal(cf.Config.Entrypoint, want) {
			t.Errorf("Entrypoint %q, want %q", cf.Config.Entrypoint, want)
		}
		if want := []string{"hello world"}; !slices.Equal(cf.Config.Cmd, want) {
			t.Errorf("Cmd %q, want %q", cf.Config.Cmd, want)
		}
		var chain []string
		for _, e := range cf.Config.Env {
			if v, ok := strings.CutPrefix(e, entryVar+"="); ok {
				if err := json.Unmarshal([]byte(v), &chain); err != nil {
					t.Errorf("%s is not a JSON array: %v", e, err)
				}
			}
		}
		if want := []string{"/bin/echo", "entry says:"}; !slices.Equal(chain, want) {
			t.Errorf("%s chain %q, want %q (env %q)", entryVar, chain, want, cf.Config.Env)
		}
	})
}

// TestProxyCraneValidate runs crane validate --remote through the proxy:
// every manifest, config and layer, the appended one included, must match
// its digest and size.
func TestProxyCraneValidate(t *testing.T) {
	cr := newCrane(t)
	_, _, d := startProxy(t)
	for _, repo := range []string{repoBusybox, repoEcho, repoNoShell, repoMulti} {
		t.Run(repo, func(t *testing.T) {
			if out := cr.validate(t, d.ref(repo)); !strings.Contains(out, "PASS") {
				t.Errorf("crane validate: %q, want PASS", out)
			}
		})
	}
}

// TestProxyPodmanRun runs the images through the proxy with podman.
func TestProxyPodmanRun(t *testing.T) {
	pm := newPodman(t)
	u, _, d := startProxy(t)
	checkRuns(t, u, d, pm.run)
}

// runFunc runs image with args (none: the image's own command) in a
// client that runs images as Docker does, and returns the container's
// stdout: podman.run, dockerd.run.
type runFunc func(tb testing.TB, image string, args ...string) string

// checkRuns runs the test images through the proxy d with run. Where the
// image runs the same upstream (u), the output must be the same as
// without the proxy: the entry must chain to the original entrypoint with
// the original arguments.
func checkRuns(t *testing.T, u *upstream, d *towerreg, run runFunc) {
	t.Helper()
	for _, tt := range []struct {
		name   string
		repo   string
		args   []string
		want   string
		direct bool // compare with a run straight from the upstream
		check  func(t *testing.T, out string)
	}{
		{name: "busybox foo.txt", repo: repoBusybox, args: []string{"cat", "/" + fooPath}, want: fooContent},
		{name: "multi foo.txt", repo: repoMulti, args: []string{"cat", "/" + fooPath}, want: fooContent},
		{name: "echo entrypoint and cmd", repo: repoEcho, want: echoOutput, direct: true},
		{name: "echo entrypoint and args", repo: repoEcho, args: []string{"bye"}, want: "entry says: bye", direct: true},
		{name: "noshell", repo: repoNoShell, want: noShellOutput, direct: true},
		{name: "busybox shell", repo: repoBusybox, args: []string{"sh", "-c", "echo $((6*7))"}, want: "42", direct: true},
		{name: "busybox env", repo: repoBusybox, args: []string{"env"}, check: func(t *testing.T, out string) {
			// The entry takes its variable out before it chains.
			if strings.Contains(out, entryVar) {
				t.Errorf("%s leaked into the container's environment:\n%s", entryVar, out)
			}
			if !strings.Contains(out, pathEnv) {
				t.Errorf("env lost %s:\n%s", pathEnv, out)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, d.ref(tt.repo), tt.args...)
			if tt.check != nil {
				tt.check(t, out)
				return
			}
			got := strings.TrimSpace(out)
			if tt.direct {
				if direct := strings.TrimSpace(run(t, u.ref(tt.repo), tt.args...)); got != direct {
					t.Errorf("through the proxy %q, straight from the upstream %q", got, direct)
				}
			}
			if got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
		})
	}
}

// TestProxyRawAPI reads the API over plain HTTP, in both name forms: the
// upstream as the first path component, and through the default registry.
func TestProxyRawAPI(t *testing.T) {
	u, fx, d := startProxy(t)
	upLayers := len(layerDigests(t, fx.Busybox))

	var digests []string
	for _, name := range []string{u.Host + "/test/busybox", "test/busybox"} {
		t.Run(name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, d.url("/v2/"+name+"/manifests/latest"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET manifest: %s: %.500s", resp.Status, body)
			}
			sum := "sha256:" + hexSHA256(body)
			if got := resp.Header.Get("Docker-Content-Digest"); got != sum {
				t.Errorf("Docker-Content-Digest %q, body digest %s", got, sum)
			}
			digests = append(digests, sum)
			if ct := types.MediaType(resp.Header.Get("Content-Type")); ct != types.DockerManifestSchema2 {
				t.Errorf("Content-Type %q, want %s (the upstream's)", ct, types.DockerManifestSchema2)
			}
			m, err := v1.ParseManifest(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Layers) != upLayers+1 {
				t.Fatalf("%d layers, upstream %d: want one more", len(m.Layers), upLayers)
			}
			// The appended layer and the new config are served by digest.
			for _, desc := range []v1.Descriptor{m.Layers[len(m.Layers)-1], m.Config} {
				resp, blob := do(t, http.MethodGet, d.url("/v2/"+name+"/blobs/"+desc.Digest.String()))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET blob %s: %s: %.500s", desc.Digest, resp.Status, blob)
				}
				if got := "sha256:" + hexSHA256(blob); got != desc.Digest.String() || int64(len(blob)) != desc.Size {
					t.Errorf("blob %s: got %s, %d bytes; want %d bytes", desc.Digest, got, len(blob), desc.Size)
				}
			}
			resp, body = do(t, http.MethodGet, d.url("/v2/"+name+"/tags/list"))
			var tags struct{ Tags []string }
			if err := json.Unmarshal(body, &tags); err != nil || resp.StatusCode != http.StatusOK || !slices.Contains(tags.Tags, "latest") {
				t.Errorf("tags/list: %s %.500s, want latest listed", resp.Status, body)
			}
		})
	}
	// The same upstream bytes give the same rewrite, whichever way named.
	if len(digests) == 2 && digests[0] != digests[1] {
		t.Errorf("one upstream image, two digests: %v", digests)
	}
}

// TestProxyBadRequests sends what no good client would: each must get an
// OCI error with a 4xx status, never a 5xx.
func TestProxyBadRequests(t *testing.T) {
	u, _, d := startProxy(t)
	const (
		nameInvalid = "NAME_INVALID"
		digestInval = "DIGEST_INVALID"
	)
	notFound := []string{"NAME_UNKNOWN", "MANIFEST_UNKNOWN"}
	for _, tt := range []struct {
		name   string
		path   string
		status int
		codes  []string
	}{
		{"dot-dot first", "/v2/../x/manifests/latest", 400, []string{nameInvalid}},
		{"dot-dot inside", "/v2/test/../busybox/manifests/latest", 400, []string{nameInvalid}},
		{"empty component", "/v2/test//busybox/manifests/latest", 400, []string{nameInvalid}},
		{"upper case", "/v2/test/BusyBox/manifests/latest", 400, []string{nameInvalid}},
		{"upper case after host", "/v2/" + u.Host + "/Test/busybox/manifests/latest", 400, []string{nameInvalid}},
		{"300-char name", "/v2/test/" + strings.Repeat("a", 295) + "/manifests/latest", 400, []string{nameInvalid}},
		{"malformed manifest digest", "/v2/test/busybox/manifests/sha256:zz", 400, []string{digestInval}},
		{"malformed blob digest", "/v2/test/busybox/blobs/sha256:zz", 400, []string{digestInval}},
		{"blob by tag", "/v2/test/busybox/blobs/latest", 400, []string{digestInval}},
		{"unknown repo", "/v2/test/nope/manifests/latest", 404, notFound},
		{"unknown repo after host", "/v2/" + u.Host + "/test/nope/manifests/latest", 404, notFound},
		{"unknown repo tags", "/v2/test/nope/tags/list", 404, notFound},
		{"unknown tag", "/v2/test/busybox/manifests/nope", 404, notFound},
		{"unknown blob", "/v2/test/busybox/blobs/" + zeroDigest, 404, []string{"BLOB_UNKNOWN"}},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				resp, body := do(t, method, d.url(tt.path))
				if got := resp.Request.URL.EscapedPath(); got != tt.path {
					t.Fatalf("the client sent %q, not %q", got, tt.path)
				}
				checkOCIError(t, method, resp, body, tt.status, tt.codes...)
			})
		}
	}
}

// TestProxyReadOnly checks that writes are refused and never reach the
// upstream.
func TestProxyReadOnly(t *testing.T) {
	u, fx, d := startProxy(t)
	for _, tt := range []struct{ method, path string }{
		{http.MethodPut, "/v2/test/busybox/manifests/latest"},
		{http.MethodDelete, "/v2/test/busybox/manifests/latest"},
		{http.MethodPost, "/v2/test/busybox/blobs/uploads/"},
		{http.MethodPatch, "/v2/test/busybox/blobs/uploads/0b5ab1e6-0000-0000-0000-000000000000"},
		{http.MethodPut, "/v2/test/busybox/blobs/uploads/0b5ab1e6-0000-0000-0000-000000000000?digest=" + zeroDigest},
		{http.MethodDelete, "/v2/test/busybox/blobs/" + zeroDigest},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := do(t, tt.method, d.url(tt.path))
			checkOCIError(t, tt.method, resp, body, http.StatusMethodNotAllowed, "UNSUPPORTED")
		})
	}
	resp, body := do(t, http.MethodGet, "http://"+u.Host+"/v2/test/busybox/manifests/latest")
	if got, want := "sha256:"+hexSHA256(body), digestOf(t, fx.Busybox).String(); resp.StatusCode != http.StatusOK || got != want {
		t.Errorf("upstream test/busybox after the writes: %s %s, want %s", resp.Status, got, want)
	}
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
