package s3test

import "syscall"

// dieWithParent has the server killed when the test binary dies, so that
// a test killed by its timeout leaves no S3 server behind.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
