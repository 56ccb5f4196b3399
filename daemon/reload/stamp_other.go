//go:build !linux && !darwin

package reload

import "io/fs"

// inodeStamp has nothing to add where the OS reports no inode change
// time (Windows): size and mtime alone decide.
func inodeStamp(fs.FileInfo) []int64 { return nil }
