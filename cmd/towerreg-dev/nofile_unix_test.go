//go:build unix

package main

import (
	"syscall"
	"testing"
)

// TestRaiseOpenFiles lowers the soft limit as macOS sets it (256), and
// raiseOpenFiles brings it back to the hard limit.
func TestRaiseOpenFiles(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	if orig.Max <= 256 {
		t.Skipf("hard limit %d: nothing to raise", orig.Max)
	}
	low := orig
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	before, after, err := raiseOpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if before != 256 || after != uint64(orig.Max) || uint64(now.Cur) != after {
		t.Errorf("raiseOpenFiles = %d -> %d, soft limit now %d; want 256 -> %d", before, after, now.Cur, orig.Max)
	}
	// Once raised, nothing to do.
	if b, a, err := raiseOpenFiles(); err != nil || b != a {
		t.Errorf("second call: %d -> %d, %v; want no change", b, a, err)
	}
}
