//go:build unix

package runfile

import (
	"errors"
	"syscall"
)

// Alive reports whether process pid exists: signal 0 checks without
// sending anything, and EPERM means it exists as another user's.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
