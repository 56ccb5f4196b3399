package reload

import (
	"io/fs"
	"syscall"
)

// inodeStamp is the inode change time and inode number of a file, which
// no tool that restores mtimes can restore.
func inodeStamp(info fs.FileInfo) []int64 {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return []int64{st.Ctim.Sec, st.Ctim.Nsec, int64(st.Ino)}
}
