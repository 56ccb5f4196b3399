package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ---------------------------------------------------------------------------
// Issue 13's faults: what a public pull does when a redirect or the
// offload store does not work

// publicBlobLocation GETs a blob from the public handler at addr as an
// anonymous client, without following the answer, and returns its
// redirect's Location.
func publicBlobLocation(tb testing.TB, addr, name string, d v1.Hash) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/"+name+"/blobs/"+d.String(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer anonymous")
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		tb.Fatalf("public GET of %s: %s, want a 307", d, resp.Status)
	}
	return resp.Header.Get("Location")
}

// getDigest GETs url with no credentials and returns the status and the
// digest of the body.
func getDigest(tb testing.TB, url string) (int, v1.Hash) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	h, _, err := v1.SHA256(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, h
}

// waitLog waits until the daemon's log has want.
func waitLog(tb testing.TB, d *towerreg, want string) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(d.proc.logPath)
		if bytes.Contains(b, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the daemon's log does not say %q after a minute", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPublicBlobFaults: a public pull from the S3-backed upstream (an
// anonymous skopeo, which checks every digest, through a byte-counting
// relay) when something on the redirect path fails.
//   - the offload store is down when the daemon uploads its layer: the
//     pull works, the daemon's layer streams (and only it: the base layers
//     are still redirected), and the log warns;
//   - the offload store goes down mid-run, after the daemon's layer was
//     uploaded and handed out: once the recheck is due (recheck: 1s), the
//     next pull streams that layer, and the log warns;
//   - a presigned URL expired (presign_ttl: 2s): the store refuses it, and
//     the client's next GET of the blob gets a fresh one that works;
//   - the upstream redirects to a private address the developer did not
//     name: an anonymous client is refused with the policy's 403 (the
//     daemon may not follow there either); a container token's client,
//     whose registry the daemon may reach wherever it is, gets the blob
//     streamed, never the private URL;
//   - a layer reload: the new generation is uploaded, and the next public
//     pull, which has the new layer, still moves only the manifest and
//     the config.
func TestPublicBlobFaults(t *testing.T) {
	u := startS3Upstream(t)
	const repo = "test/faults"
	img := bigImage(t, 2, 8<<20, 31)
	u.push(t, repo+":latest", img)
	base, baseTotal := layerSizes(t, img)
	name := hostPath(u.Host) + "/" + repo
	ref := name + ":latest"

	t.Run("offload store down", func(t *testing.T) {
		setAWSEnv(t)
		// Nothing listens there.
		d, r := startPublic(t, publicRedirectConfig(u)+offloadYAML("offload", "http://"+freeAddr(t), ""), 0)
		waitLog(t, d, "the offload store failed")
		down, dir := relayPull(t, r, ref, noAuth(t))
		mc, own, _ := checkPulled(t, dir, img)
		if down < own || down > mc+own+headerBudget {
			t.Errorf("the daemon sent %d bytes, want its own layers (%d) streamed, with the manifest and config (%d) and headers, but no base layer (%d)",
				down, own, mc, baseTotal)
		}
	})

	t.Run("offload store down mid-run", func(t *testing.T) {
		o := startOffloadStore(t)
		// The daemon knows the store through a relay, which the test
		// closes: the store is down.
		front := startRelay(t, o.s3.Host, 0)
		d, r := startPublic(t, publicRedirectConfig(u)+offloadYAML(o.bucket, "http://"+front.Addr, "  recheck: 1s\n"), 0)
		o.waitOwnUploaded(t, d, name, base)
		down, dir := relayPull(t, r, ref, noAuth(t))
		mc, _, _ := checkPulled(t, dir, img)
		if down > mc+headerBudget {
			t.Fatalf("with the store up the daemon sent %d bytes, more than the manifest and config (%d) and headers: the test shows nothing", down, mc)
		}
		front.close()
		time.Sleep(1500 * time.Millisecond) // past the recheck
		down, dir = relayPull(t, r, ref, noAuth(t))
		mc, own, _ := checkPulled(t, dir, img)
		if down < own || down > mc+own+headerBudget {
			t.Errorf("with the store down the daemon sent %d bytes, want its own layers (%d) streamed, with the manifest and config (%d) and headers, but no base layer (%d)",
				down, own, mc, baseTotal)
		}
		waitLog(t, d, "the offload store failed")
	})

	t.Run("expired presigned URL", func(t *testing.T) {
		o := startOffloadStore(t)
		d, r := startPublic(t, publicRedirectConfig(u)+o.yaml("  presign_ttl: 2s\n"), 0)
		own := o.waitOwnUploaded(t, d, name, base)
		// The pull links the layers to the repository for its audience.
		relayPull(t, r, ref, noAuth(t))
		l := own[0].Digest
		first := publicBlobLocation(t, r.Addr, name, l)
		time.Sleep(3 * time.Second)
		if status, _ := getDigest(t, first); status == http.StatusOK {
			t.Fatalf("the store still serves a presigned URL past its presign_ttl: the test shows nothing")
		}
		again := publicBlobLocation(t, r.Addr, name, l)
		if again == first {
			t.Fatalf("the retry got the expired URL again")
		}
		if status, got := getDigest(t, again); status != http.StatusOK || got != l {
			t.Errorf("the fresh URL: %d, digest %s, want 200 with %s", status, got, l)
		}
	})

	t.Run("redirect to a private address", func(t *testing.T) {
		// The upstream is named, its storage (127.0.0.1, another port)
		// is not.
		d, r := startPublic(t, "public:\n  anonymous_registries: ["+u.Host+"]\n", 0)
		sk := newSkopeo(t)
		_, errOut, err := runCmd(t, os.Environ(), sk.bin, "--insecure-policy", "copy", "--retry-times=0", "--src-tls-verify=false",
			"--src-authfile", noAuth(t), "docker://"+r.Addr+"/"+ref, "oci:"+filepath.Join(t.TempDir(), "oci"))
		// The registry's DENIED (a 403), which skopeo prints as "denied:".
		if err == nil || !strings.Contains(errOut, "denied:") || !strings.Contains(errOut, "dial policy") {
			t.Errorf("anonymous pull: %v, want the dial policy's 403:\n%s", err, errOut)
		}

		route := tokenRoute(t, d, u.Host+"/"+repo+":latest")
		down, dir := relayPull(t, r, route, noAuth(t))
		checkPulled(t, dir, img)
		if down < baseTotal {
			t.Errorf("the daemon sent %d bytes for a token pull, less than the base layers (%d): a client was sent to a private address",
				down, baseTotal)
		}
	})

	t.Run("layer reload", func(t *testing.T) {
		o := startOffloadStore(t)
		layerDir := t.TempDir()
		file := filepath.Join(layerDir, "opt", "gen.txt")
		writeFile(t, file, "generation 1\n")
		cfg := filepath.Join(t.TempDir(), "config.yml")
		writeFile(t, cfg, publicRedirectConfig(u)+o.yaml(""))
		pubAddr := freeAddr(t)
		d := startDaemon(t, "--config", cfg, "--public-listen", pubAddr, "--layer", layerDir)
		r := startRelay(t, pubAddr, 0)

		var prev v1.Hash
		for gen := 1; gen <= 2; gen++ {
			if gen == 2 {
				writeFile(t, file, "generation 2\n")
				resp, body := doPost(t, d.url("/_towerreg/reload"))
				if resp.StatusCode != http.StatusNoContent {
					t.Fatalf("reload: %s: %s", resp.Status, body)
				}
			}
			o.waitOwnUploaded(t, d, name, base)
			down, dir := relayPull(t, r, ref, noAuth(t))
			mc, n, last := checkPulled(t, dir, img)
			if last == prev {
				t.Errorf("generation %d: the pull has the previous generation's layer %s", gen, last)
			}
			if down > mc+headerBudget {
				t.Errorf("generation %d: the daemon sent %d bytes, more than the manifest and config (%d) and headers: its layer (%d) went through it",
					gen, down, mc, n)
			}
			prev = last
		}
	})
}

func writeFile(tb testing.TB, path, s string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// doPost sends an empty JSON POST, as the admin routes want from this
// machine.
func doPost(tb testing.TB, url string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}
