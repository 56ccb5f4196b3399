package token

import "testing"

func TestPathRedactor(t *testing.T) {
	const tok = "abcdefghijklmnopqrstuvwxyz234567" // a token's shape
	const odd = "not-a-token-but-secret-anyway"    // after wt/, whatever its shape
	tests := []struct {
		name, path, in, want string
	}{
		{"token route", "/v2/wt/" + tok + "/busybox/manifests/latest", "wt/" + tok + "/busybox", "wt/abcdef…/busybox"},
		{"doubled slash", "/v2//wt/" + tok + "/x/manifests/latest", `invalid "/wt/` + tok + `/x"`, `invalid "/wt/abcdef…/x"`},
		{"upper-case WT", "/v2/WT/" + tok + "/x/blobs/sha256:00", "WT/" + tok + "/x", "WT/abcdef…/x"},
		{"misshapen token after wt", "/v2/wt/" + odd + "/x/manifests/a", "wt/" + odd + "/x", "wt/not…/x"},
		{"token-shaped, no wt", "/v2/w/" + tok + "/manifests/a", "w/" + tok, "w/abcdef…"},
		{"short component after wt is kept", "/v2/wt/x/manifests/a", "wt/x", "wt/x"},
		{"ordinary name", "/v2/library/busybox/manifests/latest", "library/busybox", "library/busybox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PathRedactor(tt.path).Replace(tt.in); got != tt.want {
				t.Errorf("Replace(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
