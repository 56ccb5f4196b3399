package api

import "testing"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: kindBase}},
		{"/v2", route{kind: kindBase}},
		{"/v2/library/busybox/manifests/latest", route{kind: kindManifest, name: "library/busybox", ref: "latest"}},
		{"/v2/busybox/manifests/sha256:abc", route{kind: kindManifest, name: "busybox", ref: "sha256:abc"}},
		{"/v2/quay.io/nextflow/bash/blobs/sha256:abc", route{kind: kindBlob, name: "quay.io/nextflow/bash", ref: "sha256:abc"}},
		{"/v2/a/manifests/b/manifests/c", route{kind: kindManifest, name: "a/manifests/b", ref: "c"}},
		{"/v2/a/tags/list", route{kind: kindTags, name: "a", ref: ""}},
		{"/v2/127.0.0.1:5000/x/y/tags/list", route{kind: kindTags, name: "127.0.0.1:5000/x/y", ref: ""}},
		{"/v2/a/referrers/sha256:abc", route{kind: kindReferrers, name: "a", ref: "sha256:abc"}},
		{"/v2/quay.io/x/y/referrers/sha256:abc", route{kind: kindReferrers, name: "quay.io/x/y", ref: "sha256:abc"}},
		{"/v2/a/referrers/b/manifests/c", route{kind: kindManifest, name: "a/referrers/b", ref: "c"}},
		{"/v2/a/manifests/referrers/sha256:abc", route{kind: kindReferrers, name: "a/manifests", ref: "sha256:abc"}},
		{"/v2/referrers/sha256:abc", route{kind: kindUnknown}},
		{"/v2/a/blobs/uploads/", route{kind: kindUnknown}},
		{"/v2/manifests/latest", route{kind: kindUnknown}},
		{"/v2/a/tags/other", route{kind: kindUnknown}},
		{"/v3/a/manifests/latest", route{kind: kindUnknown}},
		{"/v2/../x/manifests/latest", route{kind: kindManifest, name: "../x", ref: "latest"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := parseRoute(tt.path); got != tt.want {
				t.Fatalf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}
