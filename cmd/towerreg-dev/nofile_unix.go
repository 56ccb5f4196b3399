//go:build unix

package main

import (
	"syscall"
)

// raiseOpenFiles raises the soft limit on open files towards the hard one:
// on macOS fsnotify watches with kqueue, one descriptor per file of the
// layer directory, and the default soft limit (256) is soon reached. The
// Go runtime raises it already at start (Go 1.19+); this makes sure, and
// reports the limit for the log. On macOS the kernel caps it at
// kern.maxfilesperproc, whatever the hard limit says.
func raiseOpenFiles() (before, after uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	before = uint64(lim.Cur)
	want := uint64(lim.Max)
	if c := openFilesCap(); c > 0 && c < want {
		want = c
	}
	if before >= want {
		return before, before, nil
	}
	lim.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return before, before, err
	}
	return before, want, nil
}
