//go:build !unix

package runfile

import "os"

// Alive reports whether process pid exists. On Windows FindProcess opens
// the process, which fails once it is gone; the status check that Find
// makes next catches a reused pid.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
