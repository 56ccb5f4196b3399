package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback has the kernel start writing f's dirty pages in
// [off, off+n) to disk, and returns without waiting for them.
func startWriteback(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return serr
}
