//go:build !unix

package main

import "errors"

// raiseOpenFiles has no limit to raise on Windows: fsnotify watches a
// tree with ReadDirectoryChangesW, one handle per directory.
func raiseOpenFiles() (before, after uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
