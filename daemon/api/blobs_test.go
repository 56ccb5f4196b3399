package api_test

// Blobs through the registry handler over the real proxy: moved down from
// daemon/daemon_test.go, where they went through daemon.New.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

// TestBlobRangeAndHeaders covers blobs from both sources, the upstream (a
// base layer) and the store (the injected layer): whole, ranged, HEAD, and
// a range past the end.
func TestBlobRangeAndHeaders(t *testing.T) {
	e := newStack(t, regtest.Registry())
	base := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
	e.push(t, "test/img", "latest", base)
	if _, err := remote.Head(regtest.MustRef(t, e.through("test/img")+":latest")); err != nil {
		t.Fatal(err)
	}
	ls, _ := base.Layers()
	baseDigest, _ := ls[0].Digest()
	rc, _ := ls[0].Compressed()
	baseBytes, _ := io.ReadAll(rc)
	// The injected layer's bytes, whole, are checked by their digest.
	l := e.layerFor("amd64")
	resp, err := http.Get(e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/img/blobs/" + l.GzipDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	ourBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, _, _ := v1.SHA256(bytes.NewReader(ourBytes)); got != l.GzipDigest || int64(len(ourBytes)) != l.GzipSize {
		t.Fatalf("injected layer: %d bytes hashing to %s, want %d, %s", len(ourBytes), got, l.GzipSize, l.GzipDigest)
	}

	for _, src := range []struct {
		name   string
		digest v1.Hash
		bytes  []byte
	}{
		{"upstream", baseDigest, baseBytes},
		{"store", l.GzipDigest, ourBytes},
	} {
		size := len(src.bytes)
		// A range of an upstream blob is cut from the whole blob, verified
		// and kept in the store: both sources answer alike.
		pastEnd := fmt.Sprintf("bytes */%d", size)
		tests := []struct {
			name, method, rng string
			status            int
			body              []byte
			contentRange      string
			digestHeader      bool
		}{
			{"head", "HEAD", "", 200, nil, "", true},
			{"range", "GET", "bytes=10-19", 206, src.bytes[10:20], fmt.Sprintf("bytes 10-19/%d", size), true},
			{"past the end", "GET", fmt.Sprintf("bytes=%d-", size+10), 416, nil, pastEnd, false},
			{"suffix", "GET", "bytes=-5", 206, src.bytes[size-5:], fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size), true},
			{"whole", "GET", "", 200, src.bytes, "", true},
		}
		for _, tt := range tests {
			t.Run(src.name+"/"+tt.name, func(t *testing.T) {
				url := e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/img/blobs/" + src.digest.String()
				req, _ := http.NewRequestWithContext(t.Context(), tt.method, url, nil)
				if tt.rng != "" {
					req.Header.Set("Range", tt.rng)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d (%s), want %d", resp.StatusCode, got, tt.status)
				}
				if tt.body != nil && !bytes.Equal(got, tt.body) {
					t.Errorf("body of %d bytes, want %d", len(got), len(tt.body))
				}
				if tt.method == "HEAD" && resp.ContentLength != int64(size) {
					t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, size)
				}
				if h := resp.Header.Get("Content-Range"); h != tt.contentRange {
					t.Errorf("Content-Range %q, want %q", h, tt.contentRange)
				}
				if h := resp.Header.Get("Docker-Content-Digest"); (h == src.digest.String()) != tt.digestHeader {
					t.Errorf("Docker-Content-Digest %q (want it: %v)", h, tt.digestHeader)
				}
				if tt.status == 416 && resp.Header.Get("Content-Type") == "application/octet-stream" {
					t.Error("a 416 is labelled as blob content")
				}
			})
		}
	}
}

// TestUpstreamDiesMidBlob: the client must see an error, never a short blob
// presented as whole.
func TestUpstreamDiesMidBlob(t *testing.T) {
	reg := regtest.Registry()
	var cut atomic.Bool
	e := newStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut.Load() && r.Method == "GET" && strings.Contains(r.URL.Path, "/blobs/") {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
			w.(http.Flusher).Flush() // the status and half the body are out
			panic(http.ErrAbortHandler)
		}
		reg.ServeHTTP(w, r)
	}))
	// Big enough that the proxy has streamed (and flushed) part of it
	// before the cut.
	base, err := random.Image(2<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.push(t, "test/img", "latest", base)
	ls, _ := base.Layers()
	d, _ := ls[0].Digest()
	cut.Store(true)

	resp, err := http.Get(e.proxy.URL + "/v2/" + regtest.Host(e.upstream) + "/test/img/blobs/" + d.String())
	if err != nil {
		t.Fatalf("GET through the proxy: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: the proxy should have started streaming before the upstream died", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("read %d bytes of a cut blob with status %d and no error: %s", len(b), resp.StatusCode, b)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("client error %v, want an unexpected EOF", err)
	}
}
