package e2e

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/tower-reg/tower-reg/internal/prereq"
)

// sharedDir holds what is built once per test binary run (the daemon).
// Everything else lives in each test's own t.TempDir.
var sharedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "towerreg-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Tool discovery

// installHints says how to get each tool on Debian 12; .ci/run does this.
var installHints = map[string]string{
	"skopeo":                  "apt-get install skopeo",
	"docker-registry":         "apt-get install docker-registry",
	"podman":                  "apt-get install podman runc uidmap",
	"runc":                    "apt-get install runc",
	"busybox":                 "apt-get install busybox-static",
	"crane":                   "make tools (GOBIN=<repo>/bin go install github.com/google/go-containerregistry/cmd/crane@v0.22.1)",
	"regctl":                  "make tools (GOBIN=<repo>/bin go install github.com/regclient/regclient/cmd/regctl@v0.11.7)",
	"conformance":             "make tools (GOBIN=<repo>/bin go install github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111)",
	"buildah":                 "apt-get install buildah",
	"docker":                  "apt-get install docker.io",
	"dockerd":                 "apt-get install docker.io",
	"containerd":              "apt-get install containerd",
	"ctr":                     "apt-get install containerd",
	"containerd-shim-runc-v2": "apt-get install containerd",
	"go":                      "install Go 1.26",
	"tmux":                    "apt-get install tmux",
	"musl-gcc":                "apt-get install musl-tools",
	"bash":                    "apt-get install bash",
	"ls":                      "apt-get install coreutils",
	"cat":                     "apt-get install coreutils",
}

// need returns the path of an external tool, or skips or fails the test
// when it is missing. <repo>/bin comes first, where `make tools` installs
// the pinned crane.
func need(tb testing.TB, tool string) string {
	tb.Helper()
	prereq.Gate(tb, "real registries and clients")
	hint := installHints[tool]
	if tool == "busybox" {
		return needStaticBusybox(tb)
	}
	return prereq.Tool(tb, tool, hint)
}

// needStaticBusybox finds a statically linked busybox: the test images have
// no libc, so a dynamic one (Debian's "busybox" package) cannot run in them.
func needStaticBusybox(tb testing.TB) string {
	tb.Helper()
	hint := installHints["busybox"]
	p := "/bin/busybox"
	if _, err := os.Stat(p); err != nil {
		if p, err = exec.LookPath("busybox"); err != nil {
			prereq.Missing(tb, "busybox not installed", hint)
		}
	}
	f, err := elf.Open(p)
	if err != nil {
		prereq.Missing(tb, fmt.Sprintf("%s is not an ELF binary (%v)", p, err), hint)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		prereq.Missing(tb, fmt.Sprintf("%s is for %v, the test images are linux/amd64", p, f.Machine), hint)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			prereq.Missing(tb, p+" is dynamically linked; the test images have no libc", hint)
		}
	}
	return p
}

// needRoot is for rootful podman, buildah, dockerd and containerd: the
// only set-up CI runs.
func needRoot(tb testing.TB) {
	tb.Helper()
	prereq.Root(tb, "container engine tests (rootful podman, dockerd, containerd, as in CI)")
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := prereq.RepoRoot()
	if err != nil {
		tb.Fatalf("repository root: %v", err)
	}
	return dir
}
