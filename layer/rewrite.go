package layer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrUnsupported is a manifest the rewrite cannot handle: Docker schema 1,
// a media type it does not know, or bytes that do not parse as a manifest.
var ErrUnsupported = errors.New("unsupported manifest")

// ErrNotImage is a valid manifest that is not a container image (a chart,
// a signature, an attestation...): the caller serves it unchanged.
var ErrNotImage = errors.New("manifest is not an image")

// ociArtifactManifest is the artifact manifest of OCI 1.1's drafts, still
// pushed by some tools; go-containerregistry has no constant for it.
const ociArtifactManifest types.MediaType = "application/vnd.oci.artifact.manifest.v1+json"

// Image is a rewritten image: the manifest and config to serve, and their
// digests. Digests are those of these exact bytes.
type Image struct {
	Manifest       []byte
	Config         []byte
	ManifestDigest v1.Hash
	ConfigDigest   v1.Hash
}

// AppendImage appends the layer l to the image made of manifest and config,
// an OCI image manifest or a Docker schema 2 manifest and the config it
// names, and points the entrypoint at the entry when l has one. It never
// modifies its inputs, and the same inputs always give the same bytes.
//
// It returns ErrNotImage for an artifact and ErrUnsupported for schema 1,
// an index or anything that is not a manifest.
func AppendImage(manifest, config []byte, l Built) (Image, error) {
	return ApplyImage(manifest, config, []Built{l}, Change{})
}

// Change is a change to an image's config, as a container token asks for.
// The zero Change keeps the config as it is.
type Change struct {
	// Entrypoint and Cmd replace the image's when not nil; an empty,
	// non-nil slice clears them. No omitempty: null and [] differ.
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
	// Env entries (K=V) are appended: a later entry wins over an earlier
	// one of the same name, as in Docker.
	Env []string `json:"env,omitempty"`
	// WorkingDir replaces the image's when not empty.
	WorkingDir string `json:"workingDir,omitempty"`
}

// ApplyImage is AppendImage for several layers, appended in order, and a
// change to the config. The change is applied first, so that when a layer
// has the entry, the entry chains to the changed entrypoint.
func ApplyImage(manifest, config []byte, ls []Built, ch Change) (Image, error) {
	for _, l := range ls {
		if err := checkBuilt(l); err != nil {
			return Image{}, err
		}
	}
	m, err := parseObject(manifest)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	im, err := inspect(m)
	if err != nil {
		return Image{}, err
	}
	if err := im.checkConfig(config); err != nil {
		return Image{}, err
	}
	newConfig, err := appendConfig(config, len(im.layers), ls, ch)
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w", im.configDigest, err)
	}
	configDigest := sha256Of(newConfig)

	if err := im.config.set("digest", configDigest); err != nil {
		return Image{}, err
	}
	if err := im.config.set("size", len(newConfig)); err != nil {
		return Image{}, err
	}
	if err := m.set("config", im.config); err != nil {
		return Image{}, err
	}
	layerType := types.OCILayer
	if im.mediaType == types.DockerManifestSchema2 {
		layerType = types.DockerLayer
	}
	layers := im.layers
	for _, l := range ls {
		desc, err := marshal(descriptor{MediaType: layerType, Size: l.GzipSize, Digest: l.GzipDigest})
		if err != nil {
			return Image{}, err
		}
		layers = append(layers, desc)
	}
	if err := m.set("layers", layers); err != nil {
		return Image{}, err
	}
	newManifest, err := marshal(m)
	if err != nil {
		return Image{}, err
	}
	return Image{
		Manifest:       newManifest,
		Config:         newConfig,
		ManifestDigest: sha256Of(newManifest),
		ConfigDigest:   configDigest,
	}, nil
}

// IsImage reports whether AppendImage would rewrite manifest, judging by the
// manifest alone: an image manifest whose config is an image config and
// whose layers are all filesystem layers. BuildKit attestations and cosign
// signatures have an image config but in-toto or signature "layers", so the
// config's media type alone does not tell.
func IsImage(manifest []byte) bool {
	m, err := parseObject(manifest)
	if err != nil {
		return false
	}
	_, err = inspect(m)
	return err == nil
}

// MediaType tells the media type of manifest bytes, for when the registry's
// Content-Type is missing or generic: the mediaType field if there is one,
// else what the structure says. Schema 1 is reported as such, not as an
// error; anything that is not a manifest or an index is ErrUnsupported.
func MediaType(manifest []byte) (types.MediaType, error) {
	m, err := parseObject(manifest)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return sniff(m)
}

func sniff(m *object) (types.MediaType, error) {
	var version int
	if err := json.Unmarshal(m.get("schemaVersion"), &version); err != nil {
		return "", fmt.Errorf("%w: no schemaVersion", ErrUnsupported)
	}
	mt, err := m.str("mediaType")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	switch {
	case version == 1 && mt == "":
		if m.get("signatures") != nil {
			return types.DockerManifestSchema1Signed, nil
		}
		return types.DockerManifestSchema1, nil
	case version == 1 && types.MediaType(mt).IsSchema1():
		return types.MediaType(mt), nil
	case version != 2:
		return "", fmt.Errorf("%w: schemaVersion %d with mediaType %q", ErrUnsupported, version, mt)
	case mt != "":
		return types.MediaType(mt), nil
	case m.get("manifests") != nil:
		// The Docker list requires mediaType; only OCI lets an index omit it.
		return types.OCIImageIndex, nil
	case m.get("config") != nil:
		cfg, err := m.child("config")
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		if ct, _ := cfg.str("mediaType"); types.MediaType(ct) == types.DockerConfigJSON {
			return types.DockerManifestSchema2, nil
		}
		return types.OCIManifestSchema1, nil
	}
	return "", fmt.Errorf("%w: neither a manifest nor an index", ErrUnsupported)
}

// descriptor is the appended layer's descriptor. It is not v1.Descriptor:
// a field added there would change the bytes, hence every digest.
type descriptor struct {
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
	Digest    v1.Hash         `json:"digest"`
}

// imageManifest is what the rewrite reads from an image manifest.
type imageManifest struct {
	mediaType    types.MediaType
	config       *object // the config descriptor
	configDigest v1.Hash
	configSize   int64
	layers       []json.RawMessage
}

// inspect checks that m is an image manifest and reads what the rewrite
// needs. Structural errors are ErrUnsupported; a well-formed manifest of
// something else is ErrNotImage.
func inspect(m *object) (imageManifest, error) {
	mt, err := sniff(m)
	if err != nil {
		return imageManifest{}, err
	}
	switch {
	case mt.IsSchema1():
		return imageManifest{}, fmt.Errorf("%w: Docker schema 1 (%s)", ErrUnsupported, mt)
	case mt.IsIndex():
		return imageManifest{}, fmt.Errorf("%w: %s is an index, not an image manifest", ErrUnsupported, mt)
	case mt == ociArtifactManifest:
		return imageManifest{}, fmt.Errorf("%w: %s", ErrNotImage, mt)
	case !mt.IsImage():
		return imageManifest{}, fmt.Errorf("%w: media type %q", ErrUnsupported, mt)
	}
	bad := func(err error) (imageManifest, error) {
		return imageManifest{}, fmt.Errorf("%w: %s: %v", ErrUnsupported, mt, err)
	}
	im := imageManifest{mediaType: mt}
	if m.get("config") == nil {
		return bad(errors.New("no config"))
	}
	if im.config, err = m.child("config"); err != nil {
		return bad(err)
	}
	var desc struct {
		MediaType types.MediaType `json:"mediaType"`
		Digest    v1.Hash         `json:"digest"`
		Size      int64           `json:"size"`
	}
	if err := json.Unmarshal(m.get("config"), &desc); err != nil {
		return bad(fmt.Errorf("config: %v", err))
	}
	if !desc.MediaType.IsConfig() {
		return imageManifest{}, fmt.Errorf("%w: config media type %q", ErrNotImage, desc.MediaType)
	}
	im.configDigest, im.configSize = desc.Digest, desc.Size
	if im.layers, err = m.array("layers"); err != nil {
		return bad(err)
	}
	for i, raw := range im.layers {
		var d struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return bad(fmt.Errorf("layer %d: %v", i, err))
		}
		if !d.MediaType.IsLayer() {
			return imageManifest{}, fmt.Errorf("%w: layer %d has media type %q", ErrNotImage, i, d.MediaType)
		}
	}
	return im, nil
}

// checkConfig checks that config is the blob the manifest names, so that a
// caller that fetched the wrong blob gets an error, not a broken image.
func (im imageManifest) checkConfig(config []byte) error {
	if im.configDigest.Algorithm != "sha256" {
		return fmt.Errorf("%w: config digest algorithm %q", ErrUnsupported, im.configDigest.Algorithm)
	}
	if got := sha256Of(config); got != im.configDigest || int64(len(config)) != im.configSize {
		return fmt.Errorf("config is %s (%d bytes), the manifest names %s (%d bytes)",
			got, len(config), im.configDigest, im.configSize)
	}
	return nil
}

// checkBuilt refuses a zero or malformed Built, which would otherwise yield a
// manifest naming a blob nobody can serve.
func checkBuilt(l Built) error {
	for _, h := range []v1.Hash{l.TarDigest, l.GzipDigest} {
		if h.Algorithm != "sha256" {
			return fmt.Errorf("layer digest %q is not sha256", h)
		}
		if _, err := v1.NewHash(h.String()); err != nil {
			return fmt.Errorf("layer digest: %w", err)
		}
	}
	if l.GzipSize <= 0 {
		return fmt.Errorf("layer size %d", l.GzipSize)
	}
	return nil
}

func sha256Of(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b)) // reading memory cannot fail
	return h
}
