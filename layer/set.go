package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Blobs receives packed layer blobs (the daemon's content store implements it).
type Blobs interface {
	Create(ctx context.Context) (BlobWriter, error)
}

// BlobWriter is one blob being written; Commit keeps it under its digest,
// Close discards it unless committed.
type BlobWriter interface {
	io.Writer
	Commit(ctx context.Context, digest v1.Hash) error
	Close() error
}

// Set is a packed layer directory: the common layer, and one layer per
// platform overlay, keyed by the overlay's directory name ("linux_arm_v7").
type Set struct {
	// Common is the layer of images whose platform has no overlay.
	Common Built `json:"common"`
	// Platforms holds one layer per overlay; see For for the matching.
	Platforms map[string]Built `json:"platforms,omitempty"`
}

// For returns the layer for an image of platform p: the overlay named for p
// exactly, else the one for its OS and architecture alone, else Common. A
// nil p (an image that is not in an index) gets Common.
//
// The baseline variant of an architecture is the same as none, as indexes
// spell it both ways: linux/arm64/v8 and linux/arm64 both match an overlay
// named linux_arm64 or linux_arm64_v8.
func (s Set) For(p *v1.Platform) Built {
	if p == nil {
		return s.Common
	}
	for _, k := range candidateKeys(*p) {
		if b, ok := s.Platforms[k]; ok {
			return b
		}
	}
	return s.Common
}

// PlatformKey returns the overlay directory name for p: "<os>_<arch>", with
// "_<variant>" unless the variant is the architecture's baseline.
func PlatformKey(p v1.Platform) string {
	k := p.OS + "_" + p.Architecture
	if v := canonicalVariant(p.Architecture, p.Variant); v != "" {
		k += "_" + v
	}
	return k
}

// candidateKeys lists the overlay names that serve p, best first.
func candidateKeys(p v1.Platform) []string {
	base := p.OS + "_" + p.Architecture
	if canonicalVariant(p.Architecture, p.Variant) != "" {
		return []string{PlatformKey(p), base}
	}
	if v := baselineVariant(p.Architecture); v != "" {
		return []string{base, base + "_" + v}
	}
	return []string{base}
}

// baselineVariant is the variant that an architecture's images have when
// they have none, as containerd normalizes platforms.
func baselineVariant(arch string) string {
	switch arch {
	case "arm64":
		return "v8"
	case "amd64":
		return "v1"
	}
	return ""
}

// canonicalVariant is variant, or "" when it is arch's baseline.
func canonicalVariant(arch, variant string) string {
	if variant == baselineVariant(arch) {
		return ""
	}
	return variant
}

// PackSet packs the directory src into dst: the common tree (src without
// PlatformsDir) as Set.Common, and each overlay PlatformsDir/<os>_<arch> or
// PlatformsDir/<os>_<arch>_<variant> merged over the common tree as that
// platform's layer, each committed under its gzip digest.
//
// In the merge the overlay wins; an overlay file (or symlink) where the
// common tree has a directory, or the other way round, is an error, as it
// would hide a whole subtree. Entries of PlatformsDir whose names start with
// a dot (.gitignore, .DS_Store) are ignored; any other entry must be a
// directory named for a platform, so a misspelled overlay is an error rather
// than a platform silently left without its files.
func PackSet(ctx context.Context, src fs.FS, dst Blobs) (Set, error) {
	names, err := overlayNames(src)
	if err != nil {
		return Set{}, err
	}
	common, err := packBlob(ctx, src, dst)
	if err != nil {
		return Set{}, fmt.Errorf("pack common layer: %w", err)
	}
	set := Set{Common: common, Platforms: make(map[string]Built, len(names))}
	for _, name := range names {
		dir := PlatformsDir + "/" + name
		upper, err := fs.Sub(src, dir)
		if err != nil {
			return Set{}, fmt.Errorf("pack %s: %w", dir, err)
		}
		b, err := packBlob(ctx, overlayFS{lower: src, upper: upper}, dst)
		if err != nil {
			return Set{}, fmt.Errorf("pack %s: %w", dir, err)
		}
		set.Platforms[name] = b
	}
	return set, nil
}

// packBlob packs src into a new blob of dst and commits it.
func packBlob(ctx context.Context, src fs.FS, dst Blobs) (Built, error) {
	w, err := dst.Create(ctx)
	if err != nil {
		return Built{}, err
	}
	defer w.Close()
	b, err := Pack(ctx, src, w)
	if err != nil {
		return Built{}, err
	}
	if err := w.Commit(ctx, b.GzipDigest); err != nil {
		return Built{}, err
	}
	return b, nil
}

// overlayNames lists the platform overlays of src, sorted, after checking
// their names.
func overlayNames(src fs.FS) ([]string, error) {
	info, err := fs.Lstat(src, PlatformsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is reserved for platform overlays and must be a directory", PlatformsDir)
	}
	entries, err := fs.ReadDir(src, PlatformsDir)
	if err != nil {
		return nil, err
	}
	var names []string
	seen := make(map[string]string)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p, err := parsePlatformKey(name)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", PlatformsDir, name, err)
		}
		if !e.IsDir() {
			return nil, fmt.Errorf("%s/%s: a platform overlay must be a directory", PlatformsDir, name)
		}
		k := PlatformKey(p)
		if other, ok := seen[k]; ok {
			return nil, fmt.Errorf("%s/%s and %s/%s are overlays for the same platform", PlatformsDir, other, PlatformsDir, name)
		}
		seen[k] = name
		names = append(names, name) // sorted, as fs.ReadDir sorts
	}
	return names, nil
}

// parsePlatformKey parses an overlay directory name, "<os>_<arch>" or
// "<os>_<arch>_<variant>", each part lowercase letters and digits.
func parsePlatformKey(name string) (v1.Platform, error) {
	parts := strings.Split(name, "_")
	ok := len(parts) == 2 || len(parts) == 3
	for _, part := range parts {
		ok = ok && part != "" && strings.Trim(part, "abcdefghijklmnopqrstuvwxyz0123456789") == ""
	}
	if !ok {
		return v1.Platform{}, fmt.Errorf("platform overlay name %q is not <os>_<arch> or <os>_<arch>_<variant> (like linux_amd64 or linux_arm_v7)", name)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// errOverlayConflict is an overlay entry and a common entry of the same name
// of which one is a directory and the other is not.
var errOverlayConflict = errors.New("the platform overlay and the common tree disagree on whether this is a directory")

// overlayFS is upper merged over lower: a name in upper hides the same name
// in lower, and a directory in both lists the union of their entries.
// Symlinks are neither followed nor resolved across the two.
type overlayFS struct {
	lower, upper fs.FS
}

var (
	_ fs.ReadLinkFS = overlayFS{}
	_ fs.ReadDirFS  = overlayFS{}
)

// find returns the tree that provides name and its info, not following a
// symlink, and whether name is a directory in both trees, so merged.
func (o overlayFS) find(op, name string) (fs.FS, fs.FileInfo, bool, error) {
	if !fs.ValidPath(name) {
		return nil, nil, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	ui, uerr := fs.Lstat(o.upper, name)
	if uerr != nil && !errors.Is(uerr, fs.ErrNotExist) {
		return nil, nil, false, uerr
	}
	li, lerr := fs.Lstat(o.lower, name)
	if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
		return nil, nil, false, lerr
	}
	switch {
	case uerr != nil && lerr != nil:
		return nil, nil, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	case lerr != nil:
		return o.upper, ui, false, nil
	case uerr != nil:
		return o.lower, li, false, nil
	case ui.IsDir() != li.IsDir():
		return nil, nil, false, &fs.PathError{Op: op, Path: name, Err: errOverlayConflict}
	default:
		return o.upper, ui, ui.IsDir(), nil
	}
}

// Open implements fs.FS.
func (o overlayFS) Open(name string) (fs.File, error) {
	fsys, info, merged, err := o.find("open", name)
	if err != nil {
		return nil, err
	}
	if !merged {
		return fsys.Open(name)
	}
	entries, err := o.ReadDir(name)
	if err != nil {
		return nil, err
	}
	return &mergedDir{name: name, info: info, entries: entries}, nil
}

// ReadDir implements fs.ReadDirFS.
func (o overlayFS) ReadDir(name string) ([]fs.DirEntry, error) {
	fsys, _, merged, err := o.find("readdir", name)
	if err != nil {
		return nil, err
	}
	if !merged {
		return fs.ReadDir(fsys, name)
	}
	upper, err := fs.ReadDir(o.upper, name)
	if err != nil {
		return nil, err
	}
	lower, err := fs.ReadDir(o.lower, name)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]fs.DirEntry, len(upper)+len(lower))
	for _, e := range lower {
		byName[e.Name()] = e
	}
	for _, e := range upper {
		if l, ok := byName[e.Name()]; ok && l.IsDir() != e.IsDir() {
			return nil, &fs.PathError{Op: "readdir", Path: path.Join(name, e.Name()), Err: errOverlayConflict}
		}
		byName[e.Name()] = e
	}
	entries := make([]fs.DirEntry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// ReadLink implements fs.ReadLinkFS.
func (o overlayFS) ReadLink(name string) (string, error) {
	fsys, _, _, err := o.find("readlink", name)
	if err != nil {
		return "", err
	}
	return fs.ReadLink(fsys, name)
}

// Lstat implements fs.ReadLinkFS.
func (o overlayFS) Lstat(name string) (fs.FileInfo, error) {
	_, info, _, err := o.find("lstat", name)
	return info, err
}

// mergedDir is an open directory of overlayFS that exists in both trees.
type mergedDir struct {
	name    string
	info    fs.FileInfo
	entries []fs.DirEntry
	off     int
}

func (d *mergedDir) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *mergedDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *mergedDir) Close() error { return nil }

func (d *mergedDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	d.off += len(rest)
	return rest, nil
}

// PlatformFS returns the tree of src that PackSet packs for an image of
// platform p, as For picks it: the matching overlay merged over the common
// tree, else the common tree alone. It also returns the overlay's name,
// empty for the common tree.
func PlatformFS(src fs.FS, p v1.Platform) (fs.FS, string, error) {
	names, err := overlayNames(src)
	if err != nil {
		return nil, "", err
	}
	// For looks overlays up by directory name, so this does too.
	for _, k := range candidateKeys(p) {
		if !slices.Contains(names, k) {
			continue
		}
		upper, err := fs.Sub(src, PlatformsDir+"/"+k)
		if err != nil {
			return nil, "", err
		}
		return overlayFS{lower: src, upper: upper}, k, nil
	}
	return src, "", nil
}
