package tui

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNothingBelowImportsTUI keeps the one-way street: the daemon and the
// layer publish events and never depend on the dashboard, nor on a
// terminal library; only cmd/ and tui/ do.
func TestNothingBelowImportsTUI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../daemon/...", "../layer/...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 20 {
		t.Fatalf("go list -deps printed %d packages: %q", len(deps), out)
	}
	for _, d := range deps {
		for _, f := range []string{"github.com/tower-reg/tower-reg/tui", "charm.land/", "github.com/charmbracelet/"} {
			if strings.HasPrefix(d, f) {
				t.Errorf("daemon or layer depends on %s", d)
			}
		}
	}
}
