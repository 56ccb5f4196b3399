package daemon_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestPullWaitsForReload is the developer's two-line loop: a build writes
// a file of the layer in place, and a pull by tag that starts right after
// it gets the new layer, every time, without waiting or asking for a
// reload. The pull arrives inside the watcher's quiet window, before the
// re-pack has begun, and waits for it.
func TestPullWaitsForReload(t *testing.T) {
	l := startLive(t, map[string]string{
		"usr/bin/fusion": "build 0\n",
		".platforms/linux_amd64/.towerreg/entry*": "#!amd64\n",
	})
	l.push(t, "test/img:latest", randomImage(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"sh"}}))
	prev := l.headTag(t, "test/img:latest")
	for n := 1; n <= 5; n++ {
		want := []byte("build " + string(rune('0'+n)) + "\n")
		// In place, as `go build -o` writes its output.
		if err := os.WriteFile(filepath.Join(l.dir, "usr/bin/fusion"), want, 0o755); err != nil {
			t.Fatal(err)
		}
		// The kernel has the event once the write returns; a real
		// client's first request comes tens of milliseconds later
		// (docker run starts, asks its engine, the engine asks us), and
		// the watcher reads the event well within that.
		time.Sleep(20 * time.Millisecond)
		d := l.headTag(t, "test/img:latest")
		if d == prev {
			t.Fatalf("build %d: the tag's first answer after the build is the previous image %s", n, d)
		}
		if got := appended(t, l.pull(t, l.ref("test/img@"+d.String())))["usr/bin/fusion"]; got != string(want) {
			t.Fatalf("build %d: usr/bin/fusion = %q, want %q", n, got, want)
		}
		prev = d
	}
}
