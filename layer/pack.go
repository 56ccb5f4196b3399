package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
)

// ErrFileType is a file that cannot go into a layer: a socket, a device or a
// named pipe. Runtimes refuse to create some of them, and none of them carry
// content that could be copied.
var ErrFileType = errors.New("file type cannot be packed into a layer")

// ErrLinkEscapes is a symlink whose target lies outside the layer directory:
// an absolute target, or a relative one that climbs above the root. Inside
// the image it would point at the image's own files, never at what it
// points at on the machine that packed it.
var ErrLinkEscapes = errors.New("symlink target is outside the layer directory")

// The gzip settings are part of every digest tower-reg serves: changing one
// (or upgrading klauspost/compress to a version that encodes differently)
// changes the layer's digest, and so every rewritten image's.
const (
	// gzipLevel trades a little packing time for a smaller blob. The layer
	// is packed once per change but pulled by every node that runs an
	// image, often through a tunnel, and pgzip spreads the work over the
	// cores, so a few MiB pack in milliseconds either way.
	gzipLevel = pgzip.DefaultCompression
	// gzipBlockSize is how pgzip splits the stream: each block is deflated
	// on its own, primed with the previous block's last 32 KiB, so the bytes
	// depend on it. It is pgzip's default, pinned here so that a change of
	// that default cannot change the digests.
	gzipBlockSize = 1 << 20
	// maxGzipBlocks bounds how many blocks are compressed at once, and with
	// it the memory (about two blocks each) whatever the size of the
	// directory. The count does not change the bytes, only the speed.
	maxGzipBlocks = 8
)

// epoch is the mtime of every entry. A fixed time keeps the digest a
// function of the content alone; Unix 0 is what reproducible builds use
// (SOURCE_DATE_EPOCH=0), and unlike the zero time.Time it fits in the
// ustar header, so no PAX record is needed for it.
func epoch() time.Time { return time.Unix(0, 0) }

// entryName is EntryPath as a path inside an fs.FS and the tar.
func entryName() string { return strings.TrimPrefix(EntryPath, "/") }

// Pack writes the directory src as a gzipped tar layer to w and describes
// what it wrote.
//
// The output is a function of the tree alone: entries come in fs.WalkDir
// order (depth first, each directory's names sorted bytewise, so a directory
// precedes its contents), every entry has mtime Unix 0, uid and gid 0 and no
// user or group names, and the gzip stream has no name, no time and pinned
// settings. Names are relative ("a/b", directories "a/b/"), as Docker and
// BuildKit write them; the root itself has no entry, so the image keeps the
// metadata of its /.
//
// Permissions are kept with the setuid, setgid and sticky bits; symlinks are
// packed as links (mode 0777, as Linux has them), never followed; empty directories are kept; hard links are
// packed as separate regular files, as fs.FS cannot tell them apart. The
// top-level PlatformsDir is left out (see PackSet). Sockets, devices, named
// pipes (ErrFileType) and symlinks leading out of src (ErrLinkEscapes) are
// refused with an *fs.PathError naming the file, as is any file that cannot
// be read or shrinks while it is packed.
//
// File contents are streamed, so memory does not grow with the directory.
// Cancelling ctx stops the packing; w then holds a partial blob.
func Pack(ctx context.Context, src fs.FS, w io.Writer) (Built, error) {
	return pack(ctx, src, w, min(runtime.GOMAXPROCS(0), maxGzipBlocks))
}

// pack is Pack with the number of blocks pgzip compresses at once, which the
// tests vary to show that it does not change the output.
func pack(ctx context.Context, src fs.FS, w io.Writer, blocks int) (Built, error) {
	gzipSum := sha256.New()
	out := &countingWriter{w: io.MultiWriter(w, gzipSum)}
	zw, err := pgzip.NewWriterLevel(out, gzipLevel)
	if err != nil {
		return Built{}, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.SetConcurrency(gzipBlockSize, blocks); err != nil {
		return Built{}, fmt.Errorf("gzip: %w", err)
	}
	// pgzip writes the zero time.Time as a nonsense timestamp; RFC 1952
	// reserves 0 for "no time".
	zw.ModTime = epoch()

	tarSum := sha256.New()
	p := &packer{ctx: ctx, src: src, tw: tar.NewWriter(io.MultiWriter(zw, tarSum))}
	err = fs.WalkDir(src, ".", p.visit)
	if err == nil {
		err = p.tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		// After an error pgzip's Close returns early and leaves its writer
		// goroutine waiting; Reset is what stops it.
		zw.Reset(io.Discard)
		return Built{}, err
	}
	return Built{
		TarDigest:  sha256Hash(tarSum),
		GzipDigest: sha256Hash(gzipSum),
		GzipSize:   out.n,
		HasEntry:   p.hasEntry,
		Files:      p.files,
	}, nil
}

// packer is the state of one Pack.
type packer struct {
	ctx      context.Context
	src      fs.FS
	tw       *tar.Writer
	files    int
	hasEntry bool
}

// visit is the fs.WalkDirFunc that writes one entry.
func (p *packer) visit(name string, d fs.DirEntry, err error) error {
	if err != nil {
		return pathError(name, err)
	}
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if name == "." {
		if !d.IsDir() {
			return pathError(name, errors.New("not a directory"))
		}
		return nil
	}
	if name == PlatformsDir {
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	}
	info, err := d.Info()
	if err != nil {
		return pathError(name, err)
	}
	mode := info.Mode()
	hdr := &tar.Header{
		Name:    name,
		Mode:    tarMode(mode),
		ModTime: epoch(),
		Format:  tar.FormatPAX,
	}
	switch {
	case mode.IsRegular():
		if err := p.file(name, hdr); err != nil {
			return err
		}
		if name == entryName() && mode.Perm()&0o111 != 0 {
			p.hasEntry = true
		}
		p.files++
		return nil
	case mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case mode&fs.ModeSymlink != 0:
		target, err := fs.ReadLink(p.src, name)
		if err != nil {
			return pathError(name, err)
		}
		if err := checkLink(name, target); err != nil {
			return pathError(name, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		// Linux ignores a symlink's mode and always reports 0777; macOS
		// reports 0755. The digest should not depend on who packed.
		hdr.Mode = 0o777
	default:
		return pathError(name, fmt.Errorf("%w: %s", ErrFileType, describe(mode)))
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return pathError(name, err)
	}
	p.files++
	return nil
}

// file writes the regular file name, whose header is hdr but for its type
// and size.
func (p *packer) file(name string, hdr *tar.Header) error {
	f, err := p.src.Open(name)
	if err != nil {
		return pathError(name, err)
	}
	defer f.Close()
	// The size comes from the open file, not from the directory listing, so
	// that a file rewritten since the listing is still packed whole.
	info, err := f.Stat()
	if err != nil {
		return pathError(name, err)
	}
	if !info.Mode().IsRegular() {
		return pathError(name, errors.New("replaced while packing"))
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = info.Size()
	if err := p.tw.WriteHeader(hdr); err != nil {
		return pathError(name, err)
	}
	if _, err := io.CopyN(p.tw, ctxReader{p.ctx, f}, hdr.Size); err != nil {
		if errors.Is(err, io.EOF) {
			// A tar entry must have exactly the size its header announced.
			err = errors.New("file shrank while packing")
		}
		return pathError(name, err)
	}
	return nil
}

// checkLink refuses a symlink at name whose target leads out of the layer.
// The check is lexical, as a runtime extracting the layer resolves nothing.
func checkLink(name, target string) error {
	if target == "" {
		return errors.New("symlink with an empty target")
	}
	if path.IsAbs(target) {
		return fmt.Errorf("%w: %s is absolute", ErrLinkEscapes, target)
	}
	if to := path.Join(path.Dir(name), target); to == ".." || strings.HasPrefix(to, "../") {
		return fmt.Errorf("%w: %s climbs above the root", ErrLinkEscapes, target)
	}
	return nil
}

// tarMode is mode's permission bits with setuid, setgid and sticky in their
// Unix places, which is what tar headers carry.
func tarMode(mode fs.FileMode) int64 {
	m := int64(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// describe names the type of a file Pack refuses.
func describe(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe"
	case mode&fs.ModeCharDevice != 0:
		return "character device"
	case mode&fs.ModeDevice != 0:
		return "device"
	default:
		return "irregular file (" + mode.String() + ")"
	}
}

// pathError names the file of err by its path in the layer, unless err
// already names a file.
func pathError(name string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: "pack", Path: name, Err: err}
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// ctxReader stops a long copy when its context is done, so that cancelling
// does not wait for a large file to be packed whole.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
