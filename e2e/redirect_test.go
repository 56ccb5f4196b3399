package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ---------------------------------------------------------------------------
// Issue 13: pulls through the public face move no base-layer bytes

// headerBudget is what issue 13 allows through the daemon besides the
// manifests and configs: the HTTP headers of every request and answer of a
// pull, the token exchange and the redirects.
const headerBudget = 64 << 10

// publicRedirectConfig lets anonymous clients of the public listener pull
// from the S3-backed upstream u, and reach its versitygw.
//
// Both hosts are on loopback, and the dial policy lets an internet client
// reach a loopback address only for registries the developer named. The
// upstream's 307s point at presigned URLs on its versitygw (127.0.0.1,
// another port): a policy that checks redirect targets, as issue 13 says it
// must, would refuse that target if it were not named, and stream instead,
// which is right for a real private address and would make this test
// measure a refusal rather than a redirect. Listing it is the developer
// saying "this storage is mine and public", as Docker Hub's CDN is.
func publicRedirectConfig(u *upstream) string {
	return "public:\n  anonymous_registries: [" + u.Host + ", " + u.S3.Host + "]\n"
}

// startPublic starts a daemon with config yml and --public-listen, and a
// relay in front of the public listener, limited to bytesPerSecond from
// the daemon (0: no limit).
func startPublic(tb testing.TB, yml string, bytesPerSecond int64) (*towerreg, *relay) {
	tb.Helper()
	cfg := filepath.Join(tb.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		tb.Fatal(err)
	}
	pubAddr := freeAddr(tb)
	d := startDaemon(tb, "--config", cfg, "--public-listen", pubAddr)
	return d, startRelay(tb, pubAddr, bytesPerSecond)
}

// anonymousPull copies ref (a name on the public handler, without its
// host) through r with an anonymous skopeo, which checks every digest. It
// returns the bytes the daemon sent in that pull and skopeo's OCI layout.
func anonymousPull(tb testing.TB, r *relay, ref string) (down int64, dir string) {
	tb.Helper()
	sk := newSkopeo(tb)
	anon := filepath.Join(tb.TempDir(), "anonymous.json") // no such file: no credentials
	up0, down0 := r.counts()
	dir = sk.copyToOCI(tb, r.Addr+"/"+ref, false, "--src-authfile", anon)
	up, down := r.counts()
	up, down = up-up0, down-down0
	tb.Logf("through the public listener: %d bytes to the daemon, %d bytes from it", up, down)
	return down, dir
}

// publicPull is startPublic and one anonymousPull.
func publicPull(tb testing.TB, yml string, ref string) (down int64, dir string) {
	tb.Helper()
	_, r := startPublic(tb, yml, 0)
	return anonymousPull(tb, r, ref)
}

// hostPath is a registry host as the first path component of a name on
// the daemon: 127.0.0.1:5000 -> 127.0.0.1_5000.
func hostPath(hostport string) string { return strings.Replace(hostport, ":", "_", 1) }

// layerSizes returns the image's layer digests and their total size.
func layerSizes(tb testing.TB, img v1.Image) (map[v1.Hash]int64, int64) {
	tb.Helper()
	m, err := img.Manifest()
	if err != nil {
		tb.Fatal(err)
	}
	sizes := map[v1.Hash]int64{}
	var total int64
	for _, l := range m.Layers {
		sizes[l.Digest] = l.Size
		total += l.Size
	}
	return sizes, total
}

// TestPublicPullMovesNoLayers is issue 13's goal, end to end: an anonymous
// skopeo pulls a 64 MiB image from an S3-backed upstream (whose blob GETs
// answer 307 to presigned URLs) through --public-listen, with a
// byte-counting relay in front of the listener.
//   - redirect (the default, blobs.public: redirect): the daemon sends at
//     most the manifests, the configs, its own injected layer and 64 KiB of
//     headers and token answers; not one base-layer byte.
//   - offload (an offload: store, a second versitygw): once the daemon's
//     layer is uploaded, the daemon sends at most the manifests, the
//     configs and 64 KiB: its own layer is redirected to the store too.
//   - stream (blobs.public: stream, today's only behaviour): the control,
//     the same pull sends at least every base layer, so the relay would
//     have seen them.
//
// In both, skopeo checked every digest, and the image it wrote has the
// upstream's base layers and the daemon's layer on top.
func TestPublicPullMovesNoLayers(t *testing.T) {
	u := startS3Upstream(t)
	const repo = "test/big64"
	img := bigImage(t, 2, 64<<20, 13)
	u.push(t, repo+":latest", img)
	base, baseTotal := layerSizes(t, img)
	ref := hostPath(u.Host) + "/" + repo + ":latest"

	// pulled checks skopeo's image: the base layers, in order, then the
	// daemon's; it returns the bytes of the manifest, the config and the
	// injected layers.
	pulled := func(t *testing.T, dir string) (manifestAndConfig, injected int64) {
		t.Helper()
		got := layoutImage(t, dir)
		m, err := got.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := got.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := img.Manifest()
		if len(m.Layers) <= len(want.Layers) {
			t.Fatalf("the pulled image has %d layers, want the upstream's %d and the daemon's", len(m.Layers), len(want.Layers))
		}
		for i, l := range want.Layers {
			if m.Layers[i].Digest != l.Digest {
				t.Errorf("layer %d is %s, want the upstream's %s", i, m.Layers[i].Digest, l.Digest)
			}
		}
		for _, l := range m.Layers[len(want.Layers):] {
			if _, ok := base[l.Digest]; ok {
				t.Errorf("the daemon's layer %s is a base layer", l.Digest)
			}
			injected += l.Size
		}
		return int64(len(raw)) + m.Config.Size, injected
	}

	t.Run("stream", func(t *testing.T) {
		yml := publicRedirectConfig(u) + "blobs:\n  public: stream\n"
		down, dir := publicPull(t, yml, ref)
		mc, injected := pulled(t, dir)
		t.Logf("base layers %d bytes, manifest and config %d, injected layers %d", baseTotal, mc, injected)
		if down < baseTotal {
			t.Errorf("the streaming daemon sent %d bytes, less than the %d bytes of base layers: the relay missed the pull", down, baseTotal)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		down, dir := publicPull(t, publicRedirectConfig(u), ref)
		mc, injected := pulled(t, dir)
		checkRedirected(t, "skopeo", down, mc, injected, baseTotal)
	})

	// podman pulls as skopeo does, through containers/image, but it is a
	// client of its own: it follows the 307 to the presigned URL on
	// loopback with its own HTTP client, and checks the digests itself.
	t.Run("redirect/podman", func(t *testing.T) {
		pm := newPodman(t)
		_, r := startPublic(t, publicRedirectConfig(u), 0)
		// podman wants its authfile to exist: one with no credentials.
		anon := filepath.Join(t.TempDir(), "anonymous.json")
		if err := os.WriteFile(anon, []byte(`{"auths":{}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, down0 := r.counts()
		mustRun(t, pm.env, pm.bin, pm.args("pull", "--quiet", "--tls-verify=false", "--authfile", anon, r.Addr+"/"+ref)...)
		_, down1 := r.counts()
		down := down1 - down0
		// The same pull with skopeo, after podman's, gives the manifest,
		// config and injected layer sizes to hold podman's bytes to.
		_, dir := anonymousPull(t, r, ref)
		mc, injected := pulled(t, dir)
		checkRedirected(t, "podman", down, mc, injected, baseTotal)
	})

	t.Run("offload", func(t *testing.T) {
		// The store is the developer's own, named in offload:, so it is not
		// listed for anonymous pulls: the daemon makes its presigned URLs
		// itself, it does not follow an upstream there.
		store := startOffloadStore(t)
		d, r := startPublic(t, publicRedirectConfig(u)+store.yaml(""), 0)

		// The daemon's layers for this image, from the local handler, and
		// their upload: content-addressed under the prefix, in the
		// background, so wait for it (until then the daemon streams).
		store.waitOwnUploaded(t, d, hostPath(u.Host)+"/"+repo, base)

		down, dir := anonymousPull(t, r, ref)
		mc, injected := pulled(t, dir)
		budget := mc + headerBudget
		t.Logf("manifest and config %d, injected layers %d (offloaded): budget %d, sent %d", mc, injected, budget, down)
		if down > budget {
			t.Errorf("the daemon sent %d bytes for a public pull with an offload store, more than the manifest and config (%d) and %d of headers: "+
				"its own layers (%d bytes) or the base layers (%d) went through it", down, mc, headerBudget, injected, baseTotal)
		}
	})
}

// checkRedirected fails t when a public pull by who made the daemon send
// more than the manifest and config (mc), its own layers and headers: base
// layers (baseTotal bytes in all) went through it instead of the
// upstream's redirect.
func checkRedirected(t *testing.T, who string, down, mc, injected, baseTotal int64) {
	t.Helper()
	budget := mc + injected + headerBudget
	t.Logf("%s: base layers %d bytes, manifest and config %d, injected layers %d: budget %d, sent %d", who, baseTotal, mc, injected, budget, down)
	if down > budget {
		t.Errorf("the daemon sent %d bytes for %s's public pull, more than the manifest and config (%d), its own layers (%d) and %d of headers: "+
			"%d bytes of the %d of base layers went through it instead of the upstream's redirect",
			down, who, mc, injected, headerBudget, down-mc-injected, baseTotal)
	}
}
