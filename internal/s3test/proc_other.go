//go:build !linux

package s3test

import "syscall"

// dieWithParent has nothing to ask where there is no parent-death signal:
// the cleanup of the test stops the server.
func dieWithParent() *syscall.SysProcAttr { return nil }
