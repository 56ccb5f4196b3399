// Package store keeps blobs by their sha256 digest, plus small records that
// map names to digests, under one directory (the XDG cache dir in the
// daemon).
//
// Writes are atomic (temp file, fsync, rename) and a blob is renamed into
// place only after its bytes hashed to the digest it is stored under, so a
// crash or a bad stream never leaves a corrupt blob behind. Files are 0600 and
// directories 0700: the cache may hold configs of private images.
//
// Nothing is ever overwritten with other bytes, so whatever a client was
// handed by digest stays servable until GC deletes it. GC trims the store,
// blobs and records alike, to a size, least recently used first (a read
// records the use in the file's mtime), sparing pinned blobs and records,
// the blobs its caller keeps and whatever was used within a grace period.
// A record may be owned by a blob, and then goes with it. Open removes what
// crashed writes left in tmp/.
package store
