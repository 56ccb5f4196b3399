package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// ---------------------------------------------------------------------------
// Issue 13: the public face's other doors (a login, a container token)

// offloadStore is an offload store (its own versitygw) for a daemon.
type offloadStore struct {
	s3     *s3test.Server
	bucket string
}

// startOffloadStore starts the store and sets the standard AWS variables,
// which the daemon inherits, as issue 13 says its credentials come.
func startOffloadStore(tb testing.TB) offloadStore {
	tb.Helper()
	s := s3test.Start(tb)
	o := offloadStore{s3: s, bucket: s.Bucket(tb, "offload")}
	setAWSEnv(tb)
	return o
}

func setAWSEnv(tb testing.TB) {
	tb.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	tb.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	tb.Setenv("AWS_REGION", "us-east-1")
}

// offloadYAML is the offload: section for a store at endpoint; extra
// lines (indented by two) are added to it.
func offloadYAML(bucket, endpoint, extra string) string {
	return fmt.Sprintf("offload:\n  url: s3://%s/tower\n  endpoint: %s\n  region: us-east-1\n", bucket, endpoint) + extra
}

func (o offloadStore) yaml(extra string) string { return offloadYAML(o.bucket, o.s3.URL, extra) }

// waitUploaded waits until l is in the store, content-addressed under the
// prefix: the daemon uploads in the background, and streams until then.
func (o offloadStore) waitUploaded(tb testing.TB, l v1.Descriptor) {
	tb.Helper()
	key := filepath.Join(o.s3.Dir, o.bucket, "tower", "blobs", l.Digest.Algorithm, l.Digest.Hex)
	deadline := time.Now().Add(time.Minute)
	for {
		if fi, err := os.Stat(key); err == nil && fi.Size() == l.Size {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s (%d bytes) is not at s3://%s/tower/blobs/%s/%s after a minute", l.Digest, l.Size, o.bucket, l.Digest.Algorithm, l.Digest.Hex)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOwnUploaded waits until the layers the daemon d serves itself for
// name:latest (those not in base) are in the store, and returns them: the
// daemon uploads in the background, and streams until then.
func (o offloadStore) waitOwnUploaded(tb testing.TB, d *towerreg, name string, base map[v1.Hash]int64) []v1.Descriptor {
	tb.Helper()
	own := ownLayers(manifestAt(tb, d.url("/v2/"+name+"/manifests/latest")), base)
	for _, l := range own {
		o.waitUploaded(tb, l)
	}
	return own
}

// manifestAt GETs the image manifest at url.
func manifestAt(tb testing.TB, url string) *v1.Manifest {
	tb.Helper()
	resp, body := do(tb, http.MethodGet, url)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return m
}

// ownLayers are the layers of m that are not among base: the daemon's,
// and a token's.
func ownLayers(m *v1.Manifest, base map[v1.Hash]int64) []v1.Descriptor {
	var own []v1.Descriptor
	for _, l := range m.Layers {
		if _, ok := base[l.Digest]; !ok {
			own = append(own, l)
		}
	}
	return own
}

// checkPulled checks skopeo's image in dir: img's layers in order, then
// at least one of the daemon's. It returns the bytes of its manifest and
// config, and of its own layers.
func checkPulled(tb testing.TB, dir string, img v1.Image) (manifestAndConfig, own int64, last v1.Hash) {
	tb.Helper()
	got := layoutImage(tb, dir)
	m, err := got.Manifest()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := got.RawManifest()
	if err != nil {
		tb.Fatal(err)
	}
	want, _ := img.Manifest()
	if len(m.Layers) <= len(want.Layers) {
		tb.Fatalf("the pulled image has %d layers, want the upstream's %d and the daemon's", len(m.Layers), len(want.Layers))
	}
	for i, l := range want.Layers {
		if m.Layers[i].Digest != l.Digest {
			tb.Errorf("layer %d is %s, want the upstream's %s", i, m.Layers[i].Digest, l.Digest)
		}
	}
	for _, l := range m.Layers[len(want.Layers):] {
		own += l.Size
	}
	return int64(len(raw)) + m.Config.Size, own, m.Layers[len(m.Layers)-1].Digest
}

// relayPull copies ref (a name on the public handler, without its host)
// through r with skopeo and the credentials of authFile (a file that does
// not exist: none). It returns the bytes the daemon sent and the layout.
func relayPull(tb testing.TB, r *relay, ref, authFile string) (down int64, dir string) {
	tb.Helper()
	_, down0 := r.counts()
	dir = newSkopeo(tb).copyToOCI(tb, r.Addr+"/"+ref, false, "--src-authfile", authFile)
	_, down = r.counts()
	down -= down0
	tb.Logf("through the public listener: %d bytes from the daemon", down)
	return down, dir
}

// noAuth is an auth file that does not exist: an anonymous client.
func noAuth(tb testing.TB) string { return filepath.Join(tb.TempDir(), "anonymous.json") }

// publicLoginAuth logs skopeo in to the public handler at addr with the
// daemon's generated login, and returns the auth file.
func publicLoginAuth(tb testing.TB, d *towerreg, addr string) string {
	tb.Helper()
	pw, err := os.ReadFile(filepath.Join(d.stateDir(), "towerreg", "public-password"))
	if err != nil {
		tb.Fatalf("the generated public password: %v", err)
	}
	auth := filepath.Join(tb.TempDir(), "auth.json")
	out := mustRunStdin(tb, strings.TrimSpace(string(pw)), newSkopeo(tb).bin, "login", "--tls-verify=false", "--authfile", auth,
		"-u", "towerreg", "--password-stdin", addr)
	if !strings.Contains(out, "Login Succeeded") {
		tb.Fatalf("skopeo login: %s", out)
	}
	return auth
}

// tokenRoute asks d for a container token with `towerreg-dev token`
// (args, then image) and returns its target image without its host:
// "wt/<token>/<repository>:<tag>".
func tokenRoute(tb testing.TB, d *towerreg, image string, args ...string) string {
	tb.Helper()
	args = append(append([]string{"token", "--addr", d.Addr}, args...), image)
	answer := mustRun(tb, os.Environ(), daemonBinary(tb), args...)
	var resp struct{ TargetImage string }
	if err := json.Unmarshal([]byte(answer), &resp); err != nil {
		tb.Fatalf("token printed %q: %v", answer, err)
	}
	_, route, ok := strings.Cut(resp.TargetImage, "/wt/")
	if !ok {
		tb.Fatalf("targetImage %q names no token", resp.TargetImage)
	}
	return "wt/" + route
}

// packedLayerFile packs a small layer with `towerreg-dev pack` and returns
// the JSON file `towerreg-dev token --layer` takes, and its digest.
func packedLayerFile(tb testing.TB) (string, v1.Hash) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "layer")
	if err := os.MkdirAll(filepath.Join(dir, "opt"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "opt", "token.txt"), []byte("a token's own layer\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	out := mustRun(tb, os.Environ(), daemonBinary(tb), "pack", "--layer", dir, "--out", tb.TempDir())
	file := filepath.Join(tb.TempDir(), "layer.json")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		tb.Fatal(err)
	}
	var packed struct{ GzipDigest string }
	if err := json.Unmarshal([]byte(out), &packed); err != nil {
		tb.Fatalf("pack printed %q: %v", out, err)
	}
	h, err := v1.NewHash(packed.GzipDigest)
	if err != nil {
		tb.Fatalf("pack printed %q: %v", out, err)
	}
	return file, h
}

// TestPublicLoginAndTokenMoveNoLayers: issue 13's goal through the public
// handler's other two doors, with an offload store. A 64 MiB image from
// the S3-backed upstream, pulled by skopeo (which checks every digest)
// through a byte-counting relay, costs the daemon at most the manifest,
// the config and 64 KiB of headers:
//   - login: `skopeo login` with the daemon's login, then copy;
//   - token: `towerreg-dev token`, with a layer of its own or not, then
//     a copy of the target image through the public address, anonymously.
//
// The base layers are the upstream's redirects; the daemon's layer, and a
// token's (uploaded when the token was issued), are in the offload store.
func TestPublicLoginAndTokenMoveNoLayers(t *testing.T) {
	u := startS3Upstream(t)
	const repo = "test/big64"
	img := bigImage(t, 2, 64<<20, 29)
	u.push(t, repo+":latest", img)
	base, baseTotal := layerSizes(t, img)
	o := startOffloadStore(t)
	d, r := startPublic(t, publicRedirectConfig(u)+o.yaml(""), 0)
	ref := hostPath(u.Host) + "/" + repo + ":latest"

	budget := func(t *testing.T, down int64, dir string) {
		t.Helper()
		mc, own, _ := checkPulled(t, dir, img)
		t.Logf("base layers %d, manifest and config %d, own layers %d (offloaded): budget %d, sent %d", baseTotal, mc, own, mc+headerBudget, down)
		if down > mc+headerBudget {
			t.Errorf("the daemon sent %d bytes, more than the manifest and config (%d) and %d of headers: its own layers (%d) or the base layers (%d) went through it",
				down, mc, headerBudget, own, baseTotal)
		}
	}

	t.Run("login", func(t *testing.T) {
		o.waitOwnUploaded(t, d, hostPath(u.Host)+"/"+repo, base)
		down, dir := relayPull(t, r, ref, publicLoginAuth(t, d, r.Addr))
		budget(t, down, dir)
	})

	// A token with layers of its own serves those in place of the
	// daemon's; one without serves the layer generation's.
	for _, tc := range []struct {
		name     string
		ownLayer bool
	}{{"token with its own layer", true}, {"token", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			var want v1.Hash
			if tc.ownLayer {
				var file string
				file, want = packedLayerFile(t)
				args = []string{"--layer", file}
			}
			route := tokenRoute(t, d, u.Host+"/"+repo+":latest", args...)
			name, tag, _ := strings.Cut(route, ":")
			own := ownLayers(manifestAt(t, d.url("/v2/"+name+"/manifests/"+tag)), base)
			if tc.ownLayer && (len(own) != 1 || own[0].Digest != want) {
				t.Fatalf("the token's image has own layers %v, want the token's %s", own, want)
			}
			// Blobs the daemon serves itself: uploaded when the token
			// was issued, or with the generation.
			for _, l := range own {
				o.waitUploaded(t, l)
			}
			down, dir := relayPull(t, r, route, noAuth(t))
			budget(t, down, dir)
		})
	}
}

// TestPublicUpstreamBlobsOffloaded: with offload.upstream_blobs, a base
// layer whose upstream streams (a filesystem-backed docker-registry, no
// redirects) crosses the daemon on the first public pull only: verified,
// kept and then uploaded, it is redirected to the offload store on the
// next pull, which moves only the manifest, the config and headers.
func TestPublicUpstreamBlobsOffloaded(t *testing.T) {
	u := startUpstream(t)
	const repo = "test/streams"
	img := bigImage(t, 2, 16<<20, 37)
	u.push(t, repo+":latest", img)
	base, baseTotal := layerSizes(t, img)
	o := startOffloadStore(t)
	yml := "public:\n  anonymous_registries: [" + u.Host + "]\n" + o.yaml("  upstream_blobs: true\n")
	d, r := startPublic(t, yml, 0)
	name := hostPath(u.Host) + "/" + repo
	o.waitOwnUploaded(t, d, name, base)

	down, _ := relayPull(t, r, name+":latest", noAuth(t))
	if down < baseTotal {
		t.Fatalf("the first pull: the daemon sent %d bytes, less than the base layers (%d), which the upstream streams", down, baseTotal)
	}
	m, _ := img.Manifest()
	for _, l := range m.Layers {
		o.waitUploaded(t, l)
	}
	down, dir := relayPull(t, r, name+":latest", noAuth(t))
	mc, own, _ := checkPulled(t, dir, img)
	if down > mc+headerBudget {
		t.Errorf("the second pull: the daemon sent %d bytes, more than the manifest and config (%d) and %d of headers: the base layers (%d) or its own (%d) went through it",
			down, mc, headerBudget, baseTotal, own)
	}
}
