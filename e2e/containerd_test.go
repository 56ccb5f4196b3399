package e2e

// containerd's ctr through the proxy (startContainerd). ctr is not docker:
// `ctr run IMAGE ID ARGS...` replaces the image's entrypoint and command
// both, so the entry runs only without arguments or when named in front of
// them, as the README's "containerd's ctr" section says. These tests check
// what that section says.

import (
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// entryCmd is the entry's path in the image, which the README tells ctr
// users to put in front of their command.
const entryCmd = "/" + entryPath

// TestContainerdRun pulls the test images through the proxy with ctr and
// runs them: foo.txt, the entry chaining to the original entrypoint, the
// image with no shell.
func TestContainerdRun(t *testing.T) {
	c := startContainerd(t)
	u, _, d := startProxy(t)
	for _, repo := range []string{repoBusybox, repoEcho, repoNoShell, repoMulti} {
		c.pull(t, d.ref(repo))
	}
	for _, repo := range []string{repoEcho, repoNoShell} {
		c.pull(t, u.ref(repo))
	}

	for _, tt := range []struct {
		name string
		repo string
		args []string
		want string
		// direct: the same run straight from the upstream prints the
		// same; only without arguments does ctr run an image as it is.
		direct bool
	}{
		{name: "echo entrypoint and cmd", repo: repoEcho, want: echoOutput, direct: true},
		{name: "noshell", repo: repoNoShell, want: noShellOutput, direct: true},
		// The README's invocation: the entry named in front of the command
		// chains to the image's own entrypoint with these arguments.
		{name: "echo entry and args", repo: repoEcho, args: []string{entryCmd, "bye"}, want: "entry says: bye"},
		{name: "busybox foo.txt", repo: repoBusybox, args: []string{entryCmd, "cat", "/" + fooPath}, want: fooContent},
		{name: "multi foo.txt", repo: repoMulti, args: []string{entryCmd, "cat", "/" + fooPath}, want: fooContent},
		{name: "noshell entry and args", repo: repoNoShell, args: []string{entryCmd, "through the entry"}, want: "through the entry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.TrimSpace(c.runImage(t, d.ref(tt.repo), tt.args...))
			if got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			if tt.direct {
				if direct := strings.TrimSpace(c.runImage(t, u.ref(tt.repo), tt.args...)); direct != got {
					t.Errorf("through the proxy %q, straight from the upstream %q", got, direct)
				}
			}
		})
	}

	// What the README warns about: arguments alone replace the entry too.
	// The entry takes its variable out before it chains, so the variable
	// shows whether the entry ran.
	t.Run("args replace the entry", func(t *testing.T) {
		if out := c.runImage(t, d.ref(repoBusybox), "env"); !strings.Contains(out, entryVar+"=") {
			t.Errorf("ctr run IMAGE ID env: no %s, so the entry ran; the README says it does not:\n%s", entryVar, out)
		}
		out := c.runImage(t, d.ref(repoBusybox), entryCmd, "env")
		if strings.Contains(out, entryVar) {
			t.Errorf("ctr run IMAGE ID %s env: %s is still set, so the entry did not run:\n%s", entryCmd, entryVar, out)
		}
		if !strings.Contains(out, pathEnv) {
			t.Errorf("env lost %s:\n%s", pathEnv, out)
		}
	})
}

// TestContainerdPlatformAndDigest pulls the arm64 image of an index with
// --platform (its config must say arm64 and have the layer appended; it
// cannot run here), and pulls and runs an image by the digest the proxy
// made.
func TestContainerdPlatformAndDigest(t *testing.T) {
	c := startContainerd(t)
	_, fx, d := startProxy(t)

	t.Run("arm64 by platform", func(t *testing.T) {
		name, tag, _ := strings.Cut(repoMulti, ":")
		idxDigest := d.manifestDigest(t, name, tag)
		c.pull(t, d.ref(repoMulti), "--platform", "linux/arm64")
		var idx v1.IndexManifest
		mustJSON(t, c.content(t, idxDigest), &idx)
		var arm, other []v1.Descriptor
		for _, m := range idx.Manifests {
			if m.Platform != nil && m.Platform.Architecture == "arm64" {
				arm = append(arm, m)
			} else {
				other = append(other, m)
			}
		}
		if len(arm) != 1 || len(other) != 1 {
			t.Fatalf("the proxied index lists %d arm64 and %d other manifests, want 1 and 1: %+v", len(arm), len(other), idx.Manifests)
		}
		var m v1.Manifest
		mustJSON(t, c.content(t, arm[0].Digest.String()), &m)
		var cf v1.ConfigFile
		mustJSON(t, c.content(t, m.Config.Digest.String()), &cf)
		if cf.OS != "linux" || cf.Architecture != "arm64" {
			t.Errorf("the pulled config is for %s/%s, want linux/arm64", cf.OS, cf.Architecture)
		}
		checkOneLayerMore(t, diffIDs(&cf), layerDiffIDs(t, fx.MultiARM64))
		// Only the platform asked for was fetched.
		out, _, err := runCmd(t, c.env, c.ctr, "--address", c.Addr, "content", "get", other[0].Digest.String())
		if err == nil {
			t.Errorf("ctr pulled the %s manifest too:\n%.300s", other[0].Platform, out)
		}
	})

	t.Run("by digest", func(t *testing.T) {
		name, tag, _ := strings.Cut(repoBusybox, ":")
		dg := d.manifestDigest(t, name, tag)
		if up := digestOf(t, fx.Busybox).String(); dg == up {
			t.Fatalf("the proxy serves the upstream digest %s: nothing was appended", up)
		}
		ref := d.ref(name + "@" + dg)
		c.pull(t, ref)
		if got := strings.TrimSpace(c.runImage(t, ref, entryCmd, "cat", "/"+fooPath)); got != fooContent {
			t.Errorf("output %q, want %q", got, fooContent)
		}
	})
}

// mustJSON decodes b into v or fails the test.
func mustJSON(tb testing.TB, b []byte, v any) {
	tb.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("decoding %T: %v: %.300s", v, err, b)
	}
}
