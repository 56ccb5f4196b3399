package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
)

// Records filed in the store. GC collects them (see store.GC): each
// lookup treats a missing record as "never made", and the path that made
// it makes it again.
//
// The records of a manifest or blob are owned by it, so they go when it
// goes and never before: a pull by a digest the store still holds finds
// them. A rewrite record has no owner: when it is gone, the rewrite runs
// again and, the rewrite being a pure function, makes the same digest.
const (
	recRewrite  = "rewrite"  // generation+upstream digest -> rewritten manifest
	recManifest = "manifest" // digest -> media type and origin; owned by the digest
	recLink     = "link"     // repo@digest -> present: may be served for repo; owned by the digest
	// recPass prefixes a kind per scope and repository: one record per
	// rewritten index of that repository, owned by the index, listing the
	// children it left unchanged (see recordPassed).
	recPass = "pass-"
)

type manifestRecord struct {
	MediaType types.MediaType `json:"mediaType"`
	Upstream  v1.Hash         `json:"upstream"`
	Platforms []string        `json:"platforms,omitempty"`
}

// passRecord lists the children a rewritten index of a repository left
// unchanged, which a client may then fetch by their upstream digests.
type passRecord struct {
	Upstream v1.Hash   `json:"upstream"`
	Children []v1.Hash `json:"children"`
}

func (rw *Rewriting) repoKey(repo Repo) string {
	if rw.scope != "" {
		return rw.scope + " " + repo.String()
	}
	return repo.String()
}

func (rw *Rewriting) linkKey(repo Repo, d v1.Hash) string {
	return rw.repoKey(repo) + "@" + d.String()
}

// passKind is the record kind of the pass records of repo in this scope:
// a directory of its own, so that a lookup reads that repository's
// indexes only.
func (rw *Rewriting) passKind(repo Repo) string {
	sum := sha256.Sum256([]byte(rw.repoKey(repo)))
	return recPass + hex.EncodeToString(sum[:])
}

// Linked reports whether the blob or manifest d was made for repo, so that
// the store may serve it there. Digests of one repository are never served
// under another: the store may hold configs of private images.
func (rw *Rewriting) Linked(repo Repo, d v1.Hash) bool {
	var ok bool
	return rw.store.GetRecordOf(d, recLink, rw.linkKey(repo, d), &ok) == nil && ok
}

func (rw *Rewriting) link(ctx context.Context, repo Repo, ds ...v1.Hash) error {
	for _, d := range ds {
		if err := rw.store.PutRecordOf(ctx, d, recLink, rw.linkKey(repo, d), true); err != nil {
			return err
		}
	}
	return nil
}

// passed reports whether a rewritten index of repo, still in the store,
// lists d unchanged.
func (rw *Rewriting) passed(repo Repo, d v1.Hash) bool {
	found := false
	err := store.ScanRecords(rw.store, rw.passKind(repo), func(r passRecord) bool {
		found = slices.Contains(r.Children, d)
		return found
	})
	return err == nil && found
}

// recordPassed files, in one record owned by the rewritten index d, the
// children of the upstream index m that it left unchanged (attestations,
// nested indexes, unknown/unknown images): they are still the client's to
// fetch by digest. One file per index, whatever its number of children,
// and no record at all when every child was rewritten.
//
// So one manifest request writes at most 6 + P×(5+L) files and
// directories under the store, however many children the index lists:
// for the index, its blob, manifest, link, pass and rewrite records and
// the repository's pass directory; for each of the P platform images it
// rewrites, its manifest and config blobs, the manifest record, and links
// to the manifest, the config and each of the L layers appended. (A fresh
// store adds its first link, manifest and rewrite directories.)
func (rw *Rewriting) recordPassed(ctx context.Context, repo Repo, m Manifest, d v1.Hash, rewritten map[v1.Hash]bool) error {
	children, err := layer.Children(m.Bytes)
	if err != nil {
		return fmt.Errorf("%s: index %s: %w", repo, m.Digest, err)
	}
	rec := passRecord{Upstream: m.Digest}
	listed := map[v1.Hash]bool{}
	for _, c := range children {
		if !rewritten[c] && !listed[c] {
			listed[c] = true
			rec.Children = append(rec.Children, c)
		}
	}
	if len(rec.Children) == 0 {
		return nil
	}
	return rw.store.PutRecordOf(ctx, d, rw.passKind(repo), m.Digest.String(), rec)
}

// forgetCollected empties the in-memory caches once GC has removed files:
// they may name manifests and records that are gone, and a manifest
// served from memory whose config GC removed would fail half way.
func (rw *Rewriting) forgetCollected() {
	n := rw.store.Collections()
	if rw.seen.Load() == n {
		return
	}
	rw.rewrites.clear()
	rw.served.clear()
	rw.seen.Store(n)
}

type rewriteRecord struct{ Digest v1.Hash }

// rewritten finds the rewrite of an upstream digest for a generation.
func (rw *Rewriting) rewritten(key string) (v1.Hash, bool) {
	rw.forgetCollected()
	if d, ok := rw.rewrites.get(key); ok {
		return d, true
	}
	var rec rewriteRecord
	if rw.store.GetRecord(recRewrite, key, &rec) != nil {
		return v1.Hash{}, false
	}
	rw.rewrites.put(key, rec.Digest)
	return rec.Digest, true
}

// stored serves a rewritten manifest from the store.
func (rw *Rewriting) stored(repo Repo, d v1.Hash) (Served, error) {
	rw.forgetCollected()
	if s, ok := rw.served.get(rw.linkKey(repo, d)); ok {
		return s, nil
	}
	if !rw.Linked(repo, d) {
		return Served{}, store.ErrNotFound
	}
	var rec manifestRecord
	if err := rw.store.GetRecordOf(d, recManifest, d.String(), &rec); err != nil {
		return Served{}, err
	}
	b, err := rw.store.ReadBlob(d)
	if err != nil {
		return Served{}, err
	}
	s := Served{
		Manifest:  Manifest{Bytes: b, MediaType: rec.MediaType, Digest: d},
		Upstream:  rec.Upstream,
		Cached:    true,
		Platforms: rec.Platforms,
	}
	rw.served.put(rw.linkKey(repo, d), s)
	return s, nil
}
