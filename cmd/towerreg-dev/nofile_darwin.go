package main

import "syscall"

// openFilesCap is the most descriptors a process may open on macOS.
func openFilesCap() uint64 {
	n, err := syscall.SysctlUint32("kern.maxfilesperproc")
	if err != nil {
		return 0
	}
	return uint64(n)
}
