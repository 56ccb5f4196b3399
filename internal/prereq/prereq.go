// Package prereq decides what a test does when the machine lacks something
// it needs (a tool, root, /dev/fuse): on a laptop it skips with a reason
// nobody can overlook; in CI, or with TOWERREG_E2E=require, it fails, so
// that a skipped check is never reported as passing.
package prereq

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Required reports whether a missing prerequisite fails the test rather
// than skipping it.
func Required() bool {
	if os.Getenv("TOWERREG_E2E") == "require" {
		return true
	}
	ci := os.Getenv("CI")
	return ci != "" && ci != "false" && ci != "0"
}

// Missing skips tb, or fails it where the tests are required, saying what
// is missing and how to get it.
func Missing(tb testing.TB, what, how string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("TEST PREREQUISITE MISSING: %s; fix: %s (required here: CI=%q TOWERREG_E2E=%q)",
			what, how, os.Getenv("CI"), os.Getenv("TOWERREG_E2E"))
	}
	tb.Skipf("SKIPPED: %s; %s; CI does not skip this", what, how)
}

// Root skips tb, or fails it where the tests are required, unless it runs
// as root; what says what needs root.
func Root(tb testing.TB, what string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, what+" needs root", "run the tests as root (CI does)")
	}
}

// Gate skips a test that needs more than Go (real tools, servers, mounts)
// in -short mode and with TOWERREG_E2E=off: both are the explicit choice
// of whoever runs the tests. needs says what the test needs.
func Gate(tb testing.TB, needs string) {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("SKIPPED: needs %s; run without -short (CI does)", needs)
	}
	if os.Getenv("TOWERREG_E2E") == "off" {
		tb.Skip("SKIPPED: TOWERREG_E2E=off")
	}
}

// RepoRoot is the directory of tower-reg's go.mod, found from the working
// directory up: go test runs in the package's directory.
var RepoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(mod, []byte("module github.com/tower-reg/tower-reg\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the tower-reg module")
		}
		dir = parent
	}
})

// Tool finds a program the tests run: in <repo>/bin first, where `make
// tools` installs the pinned versions, then on PATH. Missing, it is
// Missing, with how to get it.
func Tool(tb testing.TB, name, how string) string {
	tb.Helper()
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, "bin", name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, name+" not installed", how)
	}
	return p
}
