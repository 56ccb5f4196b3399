package api

import (
	"strings"
	"testing"
)

// FuzzParseRoute: any path parses without a panic, and a manifest, blob or
// tags route is exactly its parts put back together: nothing of the path
// is dropped or invented on the way to the upstream.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2", "/v2/library/busybox/manifests/latest", "/v2/a/b/c/blobs/sha256:abc",
		"/v2/x/tags/list", "/v2/wt/TOKEN/x/manifests/latest", "/v2/manifests/x", "/v2//blobs/", "/v2/../x/manifests/y",
		"/v3/x", "/_towerreg/status", "/v2/a/manifests/b/manifests/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt := parseRoute(p)
		var back string
		switch rt.kind {
		case kindManifest:
			back = "/v2/" + rt.name + "/manifests/" + rt.ref
		case kindBlob:
			back = "/v2/" + rt.name + "/blobs/" + rt.ref
		case kindTags:
			back = "/v2/" + rt.name + "/tags/list"
		case kindBase:
			if p != "/v2" && p != "/v2/" {
				t.Fatalf("%q parsed as the base route", p)
			}
			return
		default:
			return
		}
		if back != p {
			t.Fatalf("%q parsed to %+v, which is %q", p, rt, back)
		}
		if strings.Contains(rt.ref, "/") {
			t.Fatalf("%q: reference %q has a slash", p, rt.ref)
		}
	})
}
