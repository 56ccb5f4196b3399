package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// skopeoConfig is the part of `skopeo inspect --config` the tests read.
type skopeoConfig struct {
	Config struct {
		Entrypoint []string
		Cmd        []string
		Env        []string
		WorkingDir string
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// TestContainerTokenFlow runs the whole token flow with the real binary:
// `towerreg-dev pack` writes a layer, `towerreg-dev token` asks the
// running daemon for a token with it (file://) and one served over
// loopback http, skopeo inspects the target image, and the token outlives
// a restart of the daemon.
func TestContainerTokenFlow(t *testing.T) {
	u, _ := startUpstreamWithImages(t)
	sk := newSkopeo(t)
	// Here, not in a subtest: podman refuses a run root path over 50
	// characters, and subtests have long temp dir names.
	pm := newPodman(t)
	bin := daemonBinary(t)
	dir := t.TempDir()
	d := startDaemonIn(t, dir, "--default-registry", u.Host)

	// A layer packed by the CLI, and another served over loopback http.
	layerDir := filepath.Join(t.TempDir(), "layer")
	if err := os.MkdirAll(filepath.Join(layerDir, "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layerDir, "opt", "hello.txt"), []byte("hello from a token layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	packJSON := mustRun(t, os.Environ(), bin, "pack", "--layer", layerDir, "--out", out)
	fileLayer := filepath.Join(t.TempDir(), "file-layer.json")
	if err := os.WriteFile(fileLayer, []byte(packJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	var packed struct {
		Location, GzipDigest, TarDigest string
		GzipSize                        int64
	}
	if err := json.Unmarshal([]byte(packJSON), &packed); err != nil {
		t.Fatalf("pack printed %q: %v", packJSON, err)
	}
	blob, err := os.ReadFile(strings.TrimPrefix(packed.Location, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(blob) }))
	t.Cleanup(srv.Close)
	httpLayer := filepath.Join(t.TempDir(), "http-layer.json")
	httpJSON := strings.Replace(packJSON, packed.Location, srv.URL+"/layer.tar.gz", 1)
	if err := os.WriteFile(httpLayer, []byte(httpJSON), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, layerFile string }{{"file", fileLayer}, {"http", httpLayer}} {
		t.Run(tc.name, func(t *testing.T) {
			answer := mustRun(t, os.Environ(), bin, "token", "--addr", d.Addr, "--layer", tc.layerFile,
				"--entrypoint", `["/bin/sh","-c"]`, "--cmd", "cat /opt/hello.txt", "--env", "GREETING=hi there", "--workdir", "/opt",
				repoBusybox)
			var resp struct{ ContainerToken, TargetImage, Expiration string }
			if err := json.Unmarshal([]byte(answer), &resp); err != nil || resp.ContainerToken == "" {
				t.Fatalf("token printed %q: %v", answer, err)
			}
			if !strings.HasPrefix(resp.TargetImage, d.Addr+"/wt/"+resp.ContainerToken+"/test/busybox:") {
				t.Fatalf("targetImage %q", resp.TargetImage)
			}
			var cfg skopeoConfig
			if err := json.Unmarshal([]byte(mustRun(t, os.Environ(), sk.bin, "--insecure-policy", "inspect", "--config",
				"--retry-times=0", "--tls-verify=false", "docker://"+resp.TargetImage)), &cfg); err != nil {
				t.Fatal(err)
			}
			c := cfg.Config
			if !slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c"}) || !slices.Equal(c.Cmd, []string{"cat /opt/hello.txt"}) ||
				c.WorkingDir != "/opt" || !slices.Contains(c.Env, "GREETING=hi there") {
				t.Errorf("config %+v", c)
			}
			if n := len(cfg.RootFS.DiffIDs); n == 0 || cfg.RootFS.DiffIDs[n-1] != packed.TarDigest {
				t.Errorf("diff_ids %v, want the token layer's %s last", cfg.RootFS.DiffIDs, packed.TarDigest)
			}
			// skopeo checks every blob against its digest on the way.
			sk.copyToOCI(t, resp.TargetImage, false)
			if tc.name == "file" {
				// And a container runs it: the token's entrypoint and cmd
				// read the token's file.
				if got := pm.run(t, resp.TargetImage); !strings.Contains(got, "hello from a token layer") {
					t.Errorf("podman run %s: %q", resp.TargetImage, got)
				}
			}
		})
	}

	// A wrong digest gets a 400 naming the field, and no token.
	bad := strings.Replace(packJSON, packed.GzipDigest, "sha256:"+strings.Repeat("0", 64), 1)
	badFile := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(badFile, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCmd(t, os.Environ(), bin, "token", "--addr", d.Addr, "--layer", badFile, repoBusybox)
	if err == nil || !strings.Contains(errOut, "gzipDigest") || !strings.Contains(errOut, packed.GzipDigest) {
		t.Errorf("token with a wrong gzipDigest: %v\n%s", err, errOut)
	}

	// The token outlives a restart.
	answer := mustRun(t, os.Environ(), bin, "token", "--addr", d.Addr, repoBusybox)
	var resp struct{ ContainerToken, TargetImage string }
	if err := json.Unmarshal([]byte(answer), &resp); err != nil {
		t.Fatal(err)
	}
	d.stop(t)
	d2 := startDaemonIn(t, dir, "--default-registry", u.Host)
	target := d2.Addr + strings.TrimPrefix(resp.TargetImage, d.Addr)
	sk.copyToOCI(t, target, false)
}
