// Package store keeps blobs by their sha256 digest, plus small records that
// map names to digests, under one directory (the XDG cache dir in the
// daemon).
//
// Writes are atomic (temp file, fsync, rename) and a blob is renamed into
// place only after its bytes hashed to the digest it is stored under, so a
// crash or a bad stream never leaves a corrupt blob behind. Files are 0600 and
// directories 0700: the cache may hold configs of private images.
package store
