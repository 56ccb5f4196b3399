package defaultlayer

import (
	"embed"
	"io/fs"
	"path"
	"strings"

	"github.com/tower-reg/tower-reg/layer"
)

// payload is the layer directory. "all:" keeps the dot-named entries, which
// the plain pattern would drop: .platforms and the .towerreg directories.
//
//go:embed all:payload
var payload embed.FS

// platforms returns the overlays that `make layer` builds an entry for.
func platforms() []string { return []string{"linux_amd64", "linux_arm64"} }

// FS returns the default layer directory, ready for layer.PackSet.
//
// embed.FS reports every file read-only (0444, directories 0555) and keeps
// no exec bit, so the modes are replaced: directories 0755, files 0644, and
// the entry, in the common tree or in an overlay, 0755.
func FS() fs.FS {
	sub, err := fs.Sub(payload, "payload")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "payload" is valid.
		panic(err)
	}
	return modeFS{sub}
}

// Missing lists the platforms whose entry binary was not built into this
// binary (a go install build misses both), for the warning of `up`.
func Missing() []string {
	var missing []string
	for _, p := range platforms() {
		name := path.Join("payload", layer.PlatformsDir, p, layer.EntryPath)
		if _, err := fs.Stat(payload, name); err != nil {
			missing = append(missing, p)
		}
	}
	return missing
}

// modeFS gives the files of fsys the modes a layer needs (see FS).
type modeFS struct{ fsys fs.FS }

var _ fs.ReadDirFS = modeFS{}

// Open implements fs.FS.
func (m modeFS) Open(name string) (fs.File, error) {
	f, err := m.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if d, ok := f.(fs.ReadDirFile); ok {
		return modeDir{d, name}, nil
	}
	return modeFile{f, name}, nil
}

// ReadDir implements fs.ReadDirFS.
func (m modeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(m.fsys, name)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		entries[i] = modeEntry{e, path.Join(name, e.Name())}
	}
	return entries, nil
}

// mode is the mode of the file name whose embedded mode is m.
func mode(name string, m fs.FileMode) fs.FileMode {
	switch {
	case m.IsDir():
		return fs.ModeDir | 0o755
	case isEntry(name):
		return 0o755
	default:
		return 0o644
	}
}

// isEntry reports whether name is the entry of the common tree or of an
// overlay, the places PackSet puts at layer.EntryPath.
func isEntry(name string) bool {
	entry := strings.TrimPrefix(layer.EntryPath, "/")
	if name == entry {
		return true
	}
	rest, ok := strings.CutPrefix(name, layer.PlatformsDir+"/")
	if !ok {
		return false
	}
	_, rest, ok = strings.Cut(rest, "/")
	return ok && rest == entry
}

// modeFile is an open regular file of modeFS.
type modeFile struct {
	fs.File
	name string
}

func (f modeFile) Stat() (fs.FileInfo, error) { return statMode(f.File, f.name) }

// modeDir is an open directory of modeFS.
type modeDir struct {
	fs.ReadDirFile
	name string
}

func (d modeDir) Stat() (fs.FileInfo, error) { return statMode(d.ReadDirFile, d.name) }

func (d modeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	entries, err := d.ReadDirFile.ReadDir(n)
	for i, e := range entries {
		entries[i] = modeEntry{e, path.Join(d.name, e.Name())}
	}
	return entries, err
}

func statMode(f fs.File, name string) (fs.FileInfo, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return modeInfo{info, mode(name, info.Mode())}, nil
}

// modeEntry is a directory entry of modeFS; name is its path in the FS.
type modeEntry struct {
	fs.DirEntry
	name string
}

func (e modeEntry) Type() fs.FileMode { return mode(e.name, e.DirEntry.Type()).Type() }

func (e modeEntry) Info() (fs.FileInfo, error) {
	info, err := e.DirEntry.Info()
	if err != nil {
		return nil, err
	}
	return modeInfo{info, mode(e.name, info.Mode())}, nil
}

// modeInfo is a FileInfo with its mode replaced.
type modeInfo struct {
	fs.FileInfo
	mode fs.FileMode
}

func (i modeInfo) Mode() fs.FileMode { return i.mode }
