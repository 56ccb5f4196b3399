package layer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

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
		entries = append(entries, e.IndexEntry)
	}
	return entries, nil
}

// RewriteIndex points every child of index whose digest is a key of repl at
// the digest and size of its value (the value's other fields are ignored).
// Every other field of a child (platform, annotations...), every other child
// and every other field of the index are kept. It returns the new index and
// its digest. A key of repl that index does not list is an error: the
// caller would serve an index that lacks an image it rewrote. With an empty
// repl the index is returned as it is.
func RewriteIndex(index []byte, repl map[v1.Hash]v1.Descriptor) ([]byte, v1.Hash, error) {
	top, children, err := parseIndex(index)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if len(repl) == 0 {
		return bytes.Clone(index), sha256Of(index), nil
	}
	for old, d := range repl {
		if _, err := v1.NewHash(d.Digest.String()); err != nil || d.Size <= 0 {
			return nil, v1.Hash{}, fmt.Errorf("replacement of %s: invalid digest %q or size %d", old, d.Digest, d.Size)
		}
	}
	found := map[v1.Hash]bool{}
	for i, c := range children {
		e, err := parseObject(c)
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%w: manifests[%d]: %v", ErrUnsupported, i, err)
		}
		// A child with a malformed digest is not one the caller rewrote (an
		// artifact ImageEntries skipped): it is kept as it is.
		s, err := e.str("digest")
		if err != nil {
			continue
		}
		old, err := v1.NewHash(s)
		if err != nil {
			continue
		}
		d, ok := repl[old]
		if !ok {
			continue
		}
		found[old] = true
		if err := e.set("digest", d.Digest); err != nil {
			return nil, v1.Hash{}, err
		}
		if err := e.set("size", d.Size); err != nil {
			return nil, v1.Hash{}, err
		}
		if children[i], err = marshal(e); err != nil {
			return nil, v1.Hash{}, err
		}
	}
	if len(found) != len(repl) {
		var missing []string
		for old := range repl {
			if !found[old] {
				missing = append(missing, old.String())
			}
		}
		slices.Sort(missing) // a stable message for a map's keys
		return nil, v1.Hash{}, fmt.Errorf("index does not list %v", missing)
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
