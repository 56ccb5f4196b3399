package reload

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
)

// fingerprint hashes what a layer is made of, short of the contents: each
// entry's path, type, permissions, size, mtime and (on Linux) ctime and
// inode, and each symlink's target. An unchanged fingerprint means an unchanged layer, so the tree is
// not packed again; a changed one packs and compares the digests.
func fingerprint(ctx context.Context, src fs.FS) ([sha256.Size]byte, error) {
	h := sha256.New()
	var buf [8]byte
	num := func(v int64) {
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	err := fs.WalkDir(src, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		num(int64(info.Mode()))
		num(info.Size())
		num(info.ModTime().UnixNano())
		// A tool that restores mtimes (cp -p, rsync -t, tar) can change
		// bytes under the same size and mtime; the inode change time and
		// the inode number it cannot restore, where the OS has them.
		for _, v := range inodeStamp(info) {
			num(v)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := fs.ReadLink(src, name)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
			h.Write([]byte{0})
		}
		return nil
	})
	var sum [sha256.Size]byte
	if err != nil {
		return sum, fmt.Errorf("scan layer directory: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
