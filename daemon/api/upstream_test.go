package api_test

// Error answers, upstream faults and quirks, and tags/list, through the
// registry handler over the real proxy: moved down from
// daemon/daemon_test.go, where they went through daemon.New.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

func TestErrors(t *testing.T) {
	e := newStack(t, regtest.Registry())
	e.push(t, "test/img", "latest", regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{}))
	up := regtest.Host(e.upstream)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/" + up + "/../x/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/Test/img/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/" + strings.Repeat("a", 300) + "/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/test/img/manifests/sha256:zz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/" + up + "/test/img/blobs/sha256:zz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/" + up + "/test/img/manifests/-bad", 400, "NAME_INVALID"},
		{"GET", "/v2/" + up + "/test/nope/manifests/latest", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/" + up + "/test/img/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/" + up + "/test/img/blobs/sha256:" + strings.Repeat("0", 64), 404, "BLOB_UNKNOWN"},
		{"PUT", "/v2/" + up + "/test/img/manifests/latest", 405, "UNSUPPORTED"},
		{"POST", "/v2/" + up + "/test/img/blobs/uploads/", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/" + up + "/test/img/manifests/latest", 405, "UNSUPPORTED"},
		{"GET", "/v2/127.0.0.1:1/x/manifests/latest", 503, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			e.count.Reset()
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, e.proxy.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not OCI error JSON: %v", err)
			}
			if resp.StatusCode != tt.status || len(body.Errors) == 0 || body.Errors[0].Code != tt.code {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body.Errors, tt.status, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if tt.method != "GET" && e.count.Get(tt.method+" manifest")+e.count.Get(tt.method+" blob")+e.count.Get(tt.method+" other") != 0 {
				t.Fatalf("%s reached the upstream", tt.method)
			}
		})
	}
}

// TestUpstreamFaults: transient upstream failures are retried; lasting ones
// reach the client as the matching OCI error, never as a 500 of ours.
func TestUpstreamFaults(t *testing.T) {
	reg := regtest.Registry()
	var failures atomic.Int32 // failures left before the upstream recovers
	var status atomic.Int32
	e := newStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && failures.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(status.Load()))
			fmt.Fprintf(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	e.push(t, "test/img", "latest", regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{}))
	url := e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/img/manifests/latest"

	tests := []struct {
		name       string
		status     int
		failures   int32
		wantStatus int
		wantCode   string
	}{
		{"one 503 is retried", http.StatusServiceUnavailable, 1, 200, ""},
		{"one 429 is retried", http.StatusTooManyRequests, 1, 200, ""},
		{"lasting 429 reaches the client", http.StatusTooManyRequests, 100, 429, "TOOMANYREQUESTS"},
		{"lasting 502 is a 502", http.StatusBadGateway, 100, 502, "UNAVAILABLE"},
		{"lasting 500 is a 502", http.StatusInternalServerError, 100, 502, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status.Store(int32(tt.status))
			failures.Store(tt.failures)
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Errors []struct{ Code string } }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%+v), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantCode != "" && (len(body.Errors) == 0 || body.Errors[0].Code != tt.wantCode) {
				t.Fatalf("errors %+v, want %s", body.Errors, tt.wantCode)
			}
		})
	}
	failures.Store(0)
}

// TestUpstreamQuirks: registries that bend the spec in ways seen in the
// wild still give a correct pull.
func TestUpstreamQuirks(t *testing.T) {
	tests := []struct {
		name  string
		quirk func(w http.ResponseWriter, r *http.Request, next http.Handler)
	}{
		{"HEAD without Docker-Content-Digest", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if r.Method == http.MethodHead {
				next.ServeHTTP(dropHeader{w, "Docker-Content-Digest"}, r)
				return
			}
			next.ServeHTTP(w, r)
		}},
		{"no HEAD on manifests", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			next.ServeHTTP(w, r)
		}},
		{"manifests as application/json", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				next.ServeHTTP(forceType{ResponseWriter: w, ct: "application/json"}, r)
				return
			}
			next.ServeHTTP(w, r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := regtest.Registry()
			var on atomic.Bool
			e := newStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if on.Load() {
					tt.quirk(w, r, reg)
					return
				}
				reg.ServeHTTP(w, r)
			}))
			base := regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{})
			e.push(t, "test/img", "latest", base)
			on.Store(true)
			img, err := remote.Image(regtest.MustRef(t, e.through("test/img")+":latest"))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			regtest.CheckInjected(t, e.layerFor("amd64"), base, img)
		})
	}
}

func TestTagsList(t *testing.T) {
	e := newStack(t, regtest.Registry())
	for _, tag := range []string{"v1", "v2"} {
		e.push(t, "test/img", tag, regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{}))
	}
	name := regtest.PathHost(e.upstream) + "/test/img"
	resp, err := http.Get(e.proxy.URL + "/v2/" + name + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	list := regtest.DecodeTags(t, resp.Body)
	if resp.StatusCode != 200 || list.Name != name || !slices.Equal(list.Tags, []string{"v1", "v2"}) {
		t.Fatalf("tags/list: %d %+v, want name %q and tags [v1 v2]", resp.StatusCode, list, name)
	}
}

// dropHeader removes one header from a response.
type dropHeader struct {
	http.ResponseWriter
	name string
}

func (d dropHeader) WriteHeader(code int) {
	d.Header().Del(d.name)
	d.ResponseWriter.WriteHeader(code)
}

// forceType sets the Content-Type of a response, whatever the handler says.
type forceType struct {
	http.ResponseWriter
	ct string
}

func (f forceType) WriteHeader(code int) {
	f.Header().Set("Content-Type", f.ct)
	f.ResponseWriter.WriteHeader(code)
}

func (f forceType) Write(b []byte) (int, error) {
	f.Header().Set("Content-Type", f.ct)
	return f.ResponseWriter.Write(b)
}
