package layer

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildKit marks the attestation manifests it adds to an index with this
// annotation; their platform is unknown/unknown.
const (
	referenceTypeAnnotation = "vnd.docker.reference.type"
	attestationManifest     = "attestation-manifest"
)

// IndexEntry is a child of an index that is an image to rewrite.
type IndexEntry struct {
	// Index is the child's position in the index's manifests.
	Index     int
	Digest    v1.Hash
	Size      int64
	MediaType types.MediaType
	// Platform is nil when the index does not say.
	Platform *v1.Platform
}

// ImageEntries lists the children of an OCI index or a Docker manifest list
// that are images to rewrite, in index order: image manifests, less
// attestations and unknown/unknown platforms. Nested indexes and artifacts
// are left out, to be referenced unchanged. A digest listed twice (one image
// for two platforms) is listed twice.
func ImageEntries(index []byte) ([]IndexEntry, error) {
	_, children, err := parseIndex(index)
	if err != nil {
		return nil, err
	}
	var entries []IndexEntry
	for i, c := range children {
		e, err := readEntry(c)
		if err != nil {
			return nil, fmt.Errorf("%w: manifests[%d]: %v", ErrUnsupported, i, err)
		}
		if !e.MediaType.IsImage() || e.attestation ||
			e.Platform != nil && e.Platform.OS == "unknown" && e.Platform.Architecture == "unknown" {
			continue
		}
		if e.Digest == (v1.Hash{}) {
			return nil, fmt.Errorf("%w: manifests[%d]: no digest", ErrUnsupported, i)
		}
		e.Index = i
		entries = append(entries, e.IndexEntry)
	}
	return entries, nil
}

// Children lists the digests of all the children of index that have a valid
// one, in index order: what a client of the index may fetch next.
func Children(index []byte) ([]v1.Hash, error) {
	_, children, err := parseIndex(index)
	if err != nil {
		return nil, err
	}
	var ds []v1.Hash
	for _, c := range children {
		if d, ok := childDigest(c); ok {
			ds = append(ds, d)
		}
	}
	return ds, nil
}

func childDigest(raw json.RawMessage) (v1.Hash, bool) {
	o, err := parseObject(raw)
	if err != nil {
		return v1.Hash{}, false
	}
	s, err := o.str("digest")
	if err != nil {
		return v1.Hash{}, false
	}
	d, err := v1.NewHash(s)
	return d, err == nil
}

// Replacement points the child at position Index of an index, whose digest
// must be Old, at New's digest and size (New's other fields are ignored).
// Children are matched by position, not digest: one manifest listed for two
// platforms may be rewritten differently for each.
type Replacement struct {
	Index int
	Old   v1.Hash
	New   v1.Descriptor
}

// RewriteIndex applies repl to index. Every other field of a replaced
// child (platform, annotations...), every other child and every other field
// of the index are kept. It returns the new index and its digest. A
// replacement whose position is not in the index, or whose child has
// another digest, is an error: the caller would serve an index that lacks
// an image it rewrote. With no replacements the index is returned as it is.
func RewriteIndex(index []byte, repl []Replacement) ([]byte, v1.Hash, error) {
	top, children, err := parseIndex(index)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if len(repl) == 0 {
		return bytes.Clone(index), sha256Of(index), nil
	}
	for _, r := range repl {
		if _, err := v1.NewHash(r.New.Digest.String()); err != nil || r.New.Size <= 0 {
			return nil, v1.Hash{}, fmt.Errorf("replacement of manifests[%d]: invalid digest %q or size %d", r.Index, r.New.Digest, r.New.Size)
		}
		if r.Index < 0 || r.Index >= len(children) {
			return nil, v1.Hash{}, fmt.Errorf("index does not list manifests[%d] (%s): it has %d children", r.Index, r.Old, len(children))
		}
		e, err := parseObject(children[r.Index])
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%w: manifests[%d]: %v", ErrUnsupported, r.Index, err)
		}
		if d, ok := childDigest(children[r.Index]); !ok || d != r.Old {
			return nil, v1.Hash{}, fmt.Errorf("index does not list %s at manifests[%d]", r.Old, r.Index)
		}
		if err := e.set("digest", r.New.Digest); err != nil {
			return nil, v1.Hash{}, err
		}
		if err := e.set("size", r.New.Size); err != nil {
			return nil, v1.Hash{}, err
		}
		if children[r.Index], err = marshal(e); err != nil {
			return nil, v1.Hash{}, err
		}
	}
	if err := top.set("manifests", children); err != nil {
		return nil, v1.Hash{}, err
	}
	b, err := marshal(top)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return b, sha256Of(b), nil
}

// parseIndex checks that index is an OCI index or a Docker manifest list and
// returns it with its children, undecoded.
func parseIndex(index []byte) (*object, []json.RawMessage, error) {
	top, err := parseObject(index)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	mt, err := sniff(top)
	if err != nil {
		return nil, nil, err
	}
	if !mt.IsIndex() {
		return nil, nil, fmt.Errorf("%w: %s is not an index", ErrUnsupported, mt)
	}
	children, err := top.array("manifests")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return top, children, nil
}

// entry is a child descriptor as ImageEntries reads it.
type entry struct {
	IndexEntry
	attestation bool
}

// readEntry decodes the fields ImageEntries needs, by their exact keys, as
// RewriteIndex matches them.
func readEntry(raw json.RawMessage) (entry, error) {
	o, err := parseObject(raw)
	if err != nil {
		return entry{}, err
	}
	var e entry
	fields := []struct {
		key string
		dst any
	}{
		{"mediaType", &e.MediaType},
		{"size", &e.Size},
		{"platform", &e.Platform},
	}
	for _, f := range fields {
		if v := o.get(f.key); v != nil {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return entry{}, fmt.Errorf("%s: %v", f.key, err)
			}
		}
	}
	var annotations map[string]string
	if v := o.get("annotations"); v != nil {
		if err := json.Unmarshal(v, &annotations); err != nil {
			return entry{}, fmt.Errorf("annotations: %v", err)
		}
	}
	e.attestation = annotations[referenceTypeAnnotation] == attestationManifest
	// Only images need a valid digest: a broken artifact is passed through.
	if v := o.get("digest"); v != nil && e.MediaType.IsImage() {
		if err := json.Unmarshal(v, &e.Digest); err != nil {
			return entry{}, fmt.Errorf("digest: %v", err)
		}
	}
	return e, nil
}
