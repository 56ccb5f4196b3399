package layer

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureDeps keeps package layer pure: it packs and rewrites, and must not
// grow a network client, a watcher, a terminal UI or a tunnel.
func TestPureDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"net/http", "github.com/fsnotify/", "charm.land/", "github.com/charmbracelet/", "golang.ngrok.com/"}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list -deps printed %d packages: %q", len(deps), out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("package layer depends on %s", d)
			}
		}
	}
}
