// Package depcheck holds the deps tests' one check: what a package builds
// with, by go list -deps, so that an import that runs upward, or a heavy
// library pulled into a pure package, fails a test instead of a review.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// Module is this module's path: a dependency under it must be allowed by
// name, as the layering allows.
const Module = "github.com/tower-reg/tower-reg/"

// Rules say what the package under test may build with.
type Rules struct {
	// Own lists the packages of this module it may depend on, besides
	// itself; nil means any.
	Own []string
	// Forbidden lists path prefixes it must not depend on at all.
	Forbidden []string
}

// Check fails t for every dependency of pkg (a go list pattern, relative
// to the test's directory) that r does not allow.
func Check(t *testing.T, pkg string, r Rules) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	deps := strings.Fields(string(out))
	// A go list that printed almost nothing checked nothing.
	if len(deps) < 5 {
		t.Fatalf("go list -deps %s printed %d packages: %q", pkg, len(deps), out)
	}
	self := deps[len(deps)-1] // go list -deps prints the package last
	for _, d := range deps {
		for _, f := range r.Forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("%s depends on %s", self, d)
			}
		}
		if r.Own != nil && d != self && strings.HasPrefix(d, Module) && !allowed(d, r.Own) {
			t.Errorf("%s depends on %s, which it may not: it may use %v", self, d, r.Own)
		}
	}
}

func allowed(d string, own []string) bool {
	for _, o := range own {
		if d == Module+o {
			return true
		}
	}
	return false
}
