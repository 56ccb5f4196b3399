package daemon_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/faults"
)

// faultConfig bounds upstream requests tightly, so that a hanging upstream
// fails a test in seconds; the bounds stay well above what a loopback
// registry needs on a loaded machine.
func faultConfig() config.Config {
	c := config.Default()
	c.Upstream = config.Upstream{Timeout: "3s", HeaderTimeout: "1500ms", StallTimeout: "1s"}
	return c
}

// ociAnswer is a raw answer of the proxy.
type ociAnswer struct {
	status     int
	codes      []string
	message    string
	retryAfter string
	body       []byte
	readErr    error
	took       time.Duration
}

func getRaw(t *testing.T, url string) ociAnswer {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	a := ociAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	a.body, a.readErr = io.ReadAll(resp.Body)
	a.took = time.Since(start)
	if resp.StatusCode >= 400 {
		var e struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(a.body, &e); err != nil {
			t.Fatalf("GET %s: status %d with a body that is no OCI error: %q", url, resp.StatusCode, a.body)
		}
		for _, x := range e.Errors {
			a.codes = append(a.codes, x.Code)
			a.message += x.Message
		}
	}
	return a
}

// wantError checks an OCI error answer.
func (a ociAnswer) wantError(t *testing.T, status int, code, inMessage string) {
	t.Helper()
	if a.status != status || len(a.codes) == 0 || a.codes[0] != code || !strings.Contains(a.message, inMessage) {
		t.Fatalf("got %d %v %q, want %d %s with %q", a.status, a.codes, a.message, status, code, inMessage)
	}
}

// wantCut checks that a blob answer was not presented as whole: the
// connection was cut before the body's end.
func (a ociAnswer) wantCut(t *testing.T) {
	t.Helper()
	if a.readErr == nil {
		t.Fatalf("status %d and %d bytes read with no error: a bad blob was served as good", a.status, len(a.body))
	}
	if !errors.Is(a.readErr, io.ErrUnexpectedEOF) {
		t.Fatalf("read error %v, want an unexpected EOF", a.readErr)
	}
}

// TestFaults puts each upstream fault between the real daemon and an
// in-process registry. The client sees a correct image after retries or a
// proper OCI error, never a wrong image; a blob that does not match its
// digest is not served as good nor cached; and once the fault is gone the
// next pull works.
func TestFaults(t *testing.T) {
	// Bound on an answer when the upstream hangs: the 3 s upstream timeout
	// plus room for a loaded machine.
	const hangBound = 10 * time.Second
	tests := []struct {
		name string
		rule faults.Rule
		// check runs with the fault on.
		check func(t *testing.T, p probe)
	}{
		{"latency", faults.Rule{Kind: faults.Latency, Delay: 300 * time.Millisecond}, func(t *testing.T, p probe) {
			p.pullOK(t)
		}},
		{"one reset on manifests is retried", faults.Rule{Kind: faults.Reset, Target: faults.Manifests, Times: 1}, func(t *testing.T, p probe) {
			p.pullOK(t)
		}},
		{"lasting resets", faults.Rule{Kind: faults.Reset, Target: faults.Manifests}, func(t *testing.T, p probe) {
			getRaw(t, p.manifest).wantError(t, http.StatusServiceUnavailable, "UNAVAILABLE", "upstream unavailable")
		}},
		{"two 503 are retried", faults.Rule{Kind: faults.Status, Code: 503, Times: 2}, func(t *testing.T, p probe) {
			p.pullOK(t)
		}},
		{"lasting 500", faults.Rule{Kind: faults.Status, Code: 500, Target: faults.Manifests}, func(t *testing.T, p probe) {
			getRaw(t, p.manifest).wantError(t, http.StatusBadGateway, "UNAVAILABLE", "500")
		}},
		{"one 429 is retried", faults.Rule{Kind: faults.TooMany, Times: 1}, func(t *testing.T, p probe) {
			p.pullOK(t)
		}},
		{"lasting 429 passes Retry-After on", faults.Rule{Kind: faults.TooMany, Target: faults.Manifests, RetryAfter: 7 * time.Second}, func(t *testing.T, p probe) {
			a := getRaw(t, p.manifest)
			a.wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS", "429")
			if a.retryAfter != "7" {
				t.Fatalf("Retry-After %q, want the upstream's 7", a.retryAfter)
			}
		}},
		{"truncated blob", faults.Rule{Kind: faults.Truncate, Target: faults.Blobs}, func(t *testing.T, p probe) {
			getRaw(t, p.blob).wantCut(t)
			getRaw(t, p.small).wantError(t, http.StatusServiceUnavailable, "UNAVAILABLE", "reading upstream blob")
		}},
		{"corrupt blobs", faults.Rule{Kind: faults.Corrupt, Target: faults.Blobs}, func(t *testing.T, p probe) {
			getRaw(t, p.blob).wantCut(t)
			getRaw(t, p.small).wantError(t, http.StatusBadGateway, "UNKNOWN", "does not match its digest")
			// The config is a blob too: the rewrite refuses it.
			getRaw(t, p.manifest).wantError(t, http.StatusBadGateway, "UNKNOWN", "does not match its digest")
		}},
		{"manifest not matching its digest", faults.Rule{Kind: faults.Corrupt, Target: faults.ManifestGets}, func(t *testing.T, p probe) {
			getRaw(t, p.manifest).wantError(t, http.StatusBadGateway, "UNKNOWN", "does not match its digest")
		}},
		{"hanging manifests", faults.Rule{Kind: faults.Hang, Target: faults.Manifests}, func(t *testing.T, p probe) {
			a := getRaw(t, p.manifest)
			a.wantError(t, http.StatusGatewayTimeout, "UNAVAILABLE", "timed out")
			if a.took > hangBound {
				t.Fatalf("answered after %v, want within %v", a.took, hangBound)
			}
		}},
		{"hanging blob", faults.Rule{Kind: faults.Hang, Target: faults.Blobs}, func(t *testing.T, p probe) {
			a := getRaw(t, p.blob)
			a.wantError(t, http.StatusGatewayTimeout, "UNAVAILABLE", "timed out")
			if a.took > hangBound {
				t.Fatalf("answered after %v, want within %v", a.took, hangBound)
			}
		}},
		{"blob stalls midway", faults.Rule{Kind: faults.Stall, Target: faults.Blobs}, func(t *testing.T, p probe) {
			a := getRaw(t, p.blob)
			a.wantCut(t)
			if a.took > hangBound {
				t.Fatalf("cut after %v, want within %v", a.took, hangBound)
			}
			getRaw(t, p.small).wantError(t, http.StatusGatewayTimeout, "UNAVAILABLE", "nothing received")
		}},
		{"oversized manifest", faults.Rule{Kind: faults.Oversize, Target: faults.Manifests}, func(t *testing.T, p probe) {
			getRaw(t, p.manifest).wantError(t, http.StatusBadGateway, "UNKNOWN", "too large")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := faults.New(registry.New(registry.Logger(quiet)))
			e := newEnvWith(t, inj, faultConfig())
			t.Cleanup(inj.Close) // before the upstream closes: release held requests
			base := bigLayerImage(t)
			e.push(t, "test/img", "latest", base)
			ls, _ := base.Layers()
			ld, _ := ls[0].Digest()
			cd, _ := base.ConfigName()
			p := probe{
				manifest: e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/manifests/latest",
				blob:     e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/blobs/" + ld.String(),
				small:    e.proxy.URL + "/v2/" + pathHost(e.upstream) + "/test/img/blobs/" + cd.String(),
				base:     base, e: e,
			}

			inj.Set(tt.rule)
			tt.check(t, p)
			if inj.Hits() == 0 {
				t.Fatal("the fault never fired: the test proved nothing")
			}
			inj.Clear()
			e.d.WaitIdle()

			// The daemon is up, and nothing the fault did stuck: the blob
			// comes from upstream again (a bad one was not cached), whole.
			before := inj.Count("GET blob")
			a := getRaw(t, p.blob)
			if a.status != http.StatusOK || a.readErr != nil || digestOf(a.body) != ld {
				t.Fatalf("blob after the fault: status %d, error %v, digest %s, want %s", a.status, a.readErr, digestOf(a.body), ld)
			}
			if tt.rule.Target == faults.Blobs && inj.Count("GET blob") != before+1 {
				t.Fatalf("the blob was served without asking upstream after a %s fault: it was cached", tt.rule.Kind)
			}
			p.pullOK(t)
		})
	}
}

// probe is what a fault case pulls.
type probe struct {
	manifest string // the proxy's URL of the tag
	blob     string // the proxy's URL of a base layer, streamed in several chunks
	small    string // the proxy's URL of the upstream config: a blob smaller than a chunk
	base     v1.Image
	e        *env
}

// bigLayerImage is an amd64 image whose layer is several of the proxy's
// 512 KiB chunks, so that a blob fault can strike after bytes went out.
func bigLayerImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// pullOK pulls the image whole through the proxy: every blob is checked
// against its digest, and the layer must have been appended to the base.
func (p probe) pullOK(t *testing.T) {
	t.Helper()
	img, err := remote.Image(mustRef(t, p.e.through("test/img")+":latest"))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pulled image is not valid: %v", err)
	}
	checkInjected(t, p.e.layerFor("amd64"), p.base, img)
}

// TestClientStopsReading: a client that asks for a big blob and then reads
// nothing is cut once it took nothing for the stall bound, so it holds no
// goroutine or upstream connection; the daemon keeps serving the blob.
// Both ways a blob goes out are tried: streamed from the upstream, then,
// once a whole GET kept it, from the store (sendfile, a piece at a time).
func TestClientStopsReading(t *testing.T) {
	e := newEnvWith(t, registry.New(registry.Logger(quiet)), faultConfig()) // 1 s stall
	const size = 64 << 20
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	e.push(t, "test/big", "latest", img)
	d, _ := l.Digest()
	blobSize, _ := l.Size()
	path := "/v2/" + pathHost(e.upstream) + "/test/big/blobs/" + d.String()

	for i, from := range []string{"the upstream", "the store"} {
		conn, err := net.Dial("tcp", host(e.proxy))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(64 << 10)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host(e.proxy))
		// The daemon gives up on the client (the blob's event, with its
		// error, is published when the handler returns) while the client
		// still reads nothing: the bound is 1 s, and each write may take
		// that long.
		deadline := time.Now().Add(5 * time.Second)
		for e.d.Status().Counts.Errors <= int64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("from %s: the daemon still served a client that read nothing for 5 s", from)
			}
			time.Sleep(50 * time.Millisecond)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.Copy(io.Discard, conn); err != nil || n >= blobSize {
			t.Fatalf("from %s: the client then read %d bytes (%v), want what was buffered, then the end", from, n, err)
		}

		resp, err := http.Get(e.proxy.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		m, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || m != blobSize || "sha256:"+hex.EncodeToString(h.Sum(nil)) != d.String() {
			t.Fatalf("from %s: the next GET: %d bytes, %v", from, m, err)
		}
		e.d.WaitIdle() // the blob is kept before the store is tried
	}
}
