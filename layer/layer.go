package layer

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// EntryPath is where the entry binary sits inside a packed layer. The
// rewritten config points Entrypoint at it, but only when the layer has it.
const EntryPath = "/.towerreg/entry"

// EntrypointEnv names the config variable that carries the image's original
// Entrypoint, JSON-encoded, so the entry can chain to it. The entry removes it
// from the environment before it execs the original program.
const EntrypointEnv = "TOWERREG_ENTRYPOINT"

// UserEnv names the config variable that carries the image's own User when
// the rewrite makes the container start as RootUser: the entry must mount
// as root, then runs the image's program as this user.
const UserEnv = "TOWERREG_USER"

// RootUser is the User of a rewritten config whose image had one. It is
// "0:0" rather than "0" or "root" so that an image built on a rewritten one
// and saying USER 0 (back to root) is told from the rewrite's own.
const RootUser = "0:0"

// PlatformsDir is the reserved top-level directory of a layer directory that
// holds per-platform overlays: PlatformsDir/<os>_<arch>[_<variant>]/... is
// merged over the common tree for that platform only.
const PlatformsDir = ".platforms"

// Built describes one packed layer: what a manifest and a config need to
// reference it, and what the daemon needs to serve it.
type Built struct {
	// TarDigest is the sha256 of the uncompressed tar: the config's diff_id.
	TarDigest v1.Hash `json:"tarDigest"`
	// GzipDigest is the sha256 of the compressed blob: the manifest's digest.
	GzipDigest v1.Hash `json:"gzipDigest"`
	// GzipSize is the compressed size in bytes.
	GzipSize int64 `json:"gzipSize"`
	// HasEntry reports whether the layer carries an executable at EntryPath.
	HasEntry bool `json:"hasEntry"`
	// Files counts the regular files, links and directories packed.
	Files int `json:"files"`
}
