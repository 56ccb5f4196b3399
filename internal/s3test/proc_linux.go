package s3test

import "syscall"

// dieWithParent has the kernel kill the server if the test binary dies
// first, so that no versitygw outlives a crashed test.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
