package public

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzPublicHandler sends any path and Authorization header to the public
// handler: it never panics, never reaches the developer's registry (Full)
// unless the path is a container token's route, and never serves an admin
// route.
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
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, auth string) {
		var full, anon bool
		h := New(Options{
			Full:       http.HandlerFunc(func(http.ResponseWriter, *http.Request) { full = true }),
			Anonymous:  http.HandlerFunc(func(http.ResponseWriter, *http.Request) { anon = true }),
			TokenRoute: func(p string) bool { return strings.HasPrefix(p, "/v2/wt/") },
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
		if full && !strings.HasPrefix(p, "/v2/wt/") {
			t.Fatalf("path %q with Authorization %q reached the developer's registry", p, auth)
		}
		if (full || anon) && p != "/v2" && !strings.HasPrefix(p, "/v2/") {
			t.Fatalf("path %q reached a registry", p)
		}
		if !strings.HasPrefix(p, "/v2") && p != TokenPath && w.Code != http.StatusNotFound {
			t.Fatalf("path %q answered %d, want 404", p, w.Code)
		}
	})
}
