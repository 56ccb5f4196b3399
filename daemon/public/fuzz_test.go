package public

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// FuzzPublicHandler sends any path and Authorization header to the public
// handler, with the daemon's own token-route and anonymous policies: it
// never panics, never reaches the developer's registry (Full) unless the
// path is a container token's route, never lets an anonymous client name
// a registry off the public list, and never serves an admin route.
func FuzzPublicHandler(f *testing.F) {
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for _, s := range [][2]string{
		{"/v2/", ""},
		{"/v2/library/busybox/manifests/latest", "Bearer anonymous"},
		{"/v2/wt/ABC/x/manifests/latest", ""},
		{"/auth/token", basic("towerreg", "wrong")},
		{"/auth/token", basic("towerreg", "")},
		{"/container-token", basic("towerreg", "x")},
		{"/_towerreg/status", "Bearer x"},
		{"/v2/../container-token", "Basic !!!"},
		{"/v2/x/blobs/sha256:a", "Bearer " + strings.Repeat("A", 64)},
		{"/v2/wt/manifests/latest", "Bearer anonymous"},
		{"/v2/127.0.0.1_9090/127.0.0.1_5000/private/busybox/manifests/latest", "Bearer anonymous"},
		{"/v2/localhost_9090/x/blobs/sha256:00", ""},
		{"/v2/[::1]_5000/x/manifests/latest", "Bearer anonymous"},
		{"/v2/quay.io/nextflow/bash/manifests/latest", "Bearer anonymous"},
		{"/v2/0177.0.0.1_80/x/tags/list", "Bearer anonymous"},
	} {
		f.Add(s[0], s[1])
	}
	access, err := api.NewAnonymous(config.DefaultRegistry, config.DefaultAnonymousRegistries())
	if err != nil {
		f.Fatal(err)
	}
	public := map[string]bool{}
	for _, r := range config.DefaultAnonymousRegistries() {
		reg, err := name.NewRegistry(r)
		if err != nil {
			f.Fatal(err)
		}
		public[reg.RegistryStr()] = true
	}
	f.Fuzz(func(t *testing.T, p, auth string) {
		var full, anon bool
		h := New(Options{
			Full:            http.HandlerFunc(func(http.ResponseWriter, *http.Request) { full = true }),
			Anonymous:       http.HandlerFunc(func(http.ResponseWriter, *http.Request) { anon = true }),
			AnonymousAccess: access.Allow,
			TokenRoute:      api.IsTokenPath,
			// A password the fuzzer cannot know.
			Login: Credential{Username: "towerreg", Password: "fuzz-" + strings.Repeat("9f", 16)},
		})
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: p}, RequestURI: p, Host: "reg.example",
			Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: "192.0.2.1:1234"}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if full && !tokenPath(p) {
			t.Fatalf("path %q with Authorization %q reached the developer's registry", p, auth)
		}
		if anon {
			if reg := registryOf(p); reg != "" && !public[reg] {
				t.Fatalf("path %q reached registry %q anonymously", p, reg)
			}
		}
		if (full || anon) && p != "/v2" && !strings.HasPrefix(p, "/v2/") {
			t.Fatalf("path %q reached a registry", p)
		}
		if !strings.HasPrefix(p, "/v2") && p != TokenPath && w.Code != http.StatusNotFound {
			t.Fatalf("path %q answered %d, want 404", p, w.Code)
		}
	})
}

// routeName is the repository name of a registry route, by the grammar of
// the distribution spec: <name>/manifests/<ref>, <name>/blobs/<digest>,
// <name>/tags/list, the last component having no slash.
func routeName(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	n := len(parts)
	if n < 3 {
		return "", false
	}
	switch {
	case parts[n-2] == "manifests", parts[n-2] == "blobs", parts[n-2] == "tags" && parts[n-1] == "list":
		return strings.Join(parts[:n-2], "/"), true
	}
	return "", false
}

// tokenPath is the oracle's reading of the container tokens' name space:
// a route whose name is "wt" or under "wt/".
func tokenPath(p string) bool {
	name, ok := routeName(p)
	return ok && (name == "wt" || strings.HasPrefix(name, "wt/"))
}

// registryOf is the canonical registry a registry route names, resolved as
// the anonymous registry resolves it, or "" when it names no valid
// repository (answered NAME_INVALID, with no upstream).
func registryOf(p string) string {
	name, ok := routeName(p)
	if !ok {
		return ""
	}
	repo, err := proxy.ParseRepo(name, config.DefaultRegistry)
	if err != nil {
		return ""
	}
	return repo.Registry
}
