package public

import "testing"

func TestRepoName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/v2/", ""},
		{"/v2/library/busybox/manifests/latest", "library/busybox"},
		{"/v2/quay.io/x/y/blobs/sha256:abc", "quay.io/x/y"},
		{"/v2/a/tags/list", "a"},
		// The challenge of a referrers request names its repository, so
		// that the token the client fetches covers it.
		{"/v2/quay.io/x/y/referrers/sha256:abc", "quay.io/x/y"},
	}
	for _, tt := range tests {
		if got := repoName(tt.path); got != tt.want {
			t.Errorf("repoName(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
