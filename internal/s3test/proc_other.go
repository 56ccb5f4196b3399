//go:build !linux

package s3test

import "syscall"

// dieWithParent has nothing to ask of the OS where there is no parent
// death signal: the tests that start servers run on Linux.
func dieWithParent() *syscall.SysProcAttr { return nil }
