package api

import (
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// TestBlobSizes: an image manifest served tells its config's and layers'
// sizes; an index, a manifest that does not parse or a digest never named
// tells none; the memory stays bounded.
func TestBlobSizes(t *testing.T) {
	image := proxy.Manifest{MediaType: types.OCIManifestSchema1, Bytes: []byte(`{"config":{"digest":"sha256:c","size":12},
		"layers":[{"digest":"sha256:a","size":1000},{"digest":"sha256:b","size":2000}]}`)}
	index := proxy.Manifest{MediaType: types.OCIImageIndex, Bytes: []byte(`{"manifests":[{"digest":"sha256:m","size":500}]}`)}
	broken := proxy.Manifest{MediaType: types.DockerManifestSchema2, Bytes: []byte(`{"layers":`)}
	s := newBlobSizes()
	for _, m := range []proxy.Manifest{image, index, broken} {
		s.record(m)
	}
	tests := []struct {
		digest string
		size   int64
		ok     bool
	}{
		{"sha256:a", 1000, true},
		{"sha256:b", 2000, true},
		{"sha256:c", 12, true},
		{"sha256:m", 0, false}, // a manifest, not a blob
		{"sha256:z", 0, false},
	}
	for _, tt := range tests {
		if n, ok := s.size(tt.digest); n != tt.size || ok != tt.ok {
			t.Errorf("size(%s) = %d, %v; want %d, %v", tt.digest, n, ok, tt.size, tt.ok)
		}
	}
	for i := range 2 * maxBlobSizes {
		s.record(proxy.Manifest{MediaType: types.OCIManifestSchema1,
			Bytes: fmt.Appendf(nil, `{"layers":[{"digest":"sha256:%d","size":1}]}`, i)})
	}
	if n := len(s.m); n > maxBlobSizes {
		t.Errorf("%d sizes remembered, want at most %d", n, maxBlobSizes)
	}
}
