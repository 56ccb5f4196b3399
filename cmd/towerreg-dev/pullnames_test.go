package main

import (
	"slices"
	"strings"
	"testing"
)

// TestPullNames: which names `up` prints, by OS. Linux engines share the
// host's loopback; the VM engines of macOS and Windows reach the host by
// their own names; the tunnel's name works everywhere.
func TestPullNames(t *testing.T) {
	for _, tt := range []struct {
		goos, listen, tunnel string
		want                 []string
	}{
		{"linux", "127.0.0.1:9090", "", []string{"127.0.0.1:9090/library/busybox"}},
		{"linux", "127.0.0.1:9191", "https://reg.ngrok.app", []string{"127.0.0.1:9191/library/busybox", "reg.ngrok.app/library/busybox"}},
		{"darwin", "127.0.0.1:9090", "", []string{"127.0.0.1:9090/library/busybox", "host.docker.internal:9090/library/busybox",
			"host.lima.internal:9090/library/busybox", "host.containers.internal:9090/library/busybox"}},
		{"windows", "localhost:9191", "", []string{"localhost:9191/library/busybox", "host.docker.internal:9191/library/busybox",
			"host.containers.internal:9191/library/busybox"}},
		{"darwin", "127.0.0.1:9090", "https://reg.ngrok.app", []string{"127.0.0.1:9090/library/busybox", "host.docker.internal:9090/library/busybox",
			"host.lima.internal:9090/library/busybox", "host.containers.internal:9090/library/busybox", "reg.ngrok.app/library/busybox"}},
		{"freebsd", "[::1]:9090", "", []string{"[::1]:9090/library/busybox"}},
	} {
		var got []string
		for _, n := range pullNames(tt.goos, tt.listen, tt.tunnel) {
			got = append(got, n.Ref)
			if n.For == "" {
				t.Errorf("%s %s: %s says not who it is for", tt.goos, tt.listen, n.Ref)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("pullNames(%s, %s, %q) =\n  %s\nwant\n  %s", tt.goos, tt.listen, tt.tunnel, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
		}
	}
}
