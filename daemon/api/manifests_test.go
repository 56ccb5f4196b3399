package api

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

func TestConfigOf(t *testing.T) {
	const cfg = "sha256:" + "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	image := `{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + cfg + `","size":1},"layers":[]}`
	for _, tt := range []struct {
		name  string
		mt    types.MediaType
		bytes string
		want  string
	}{
		{"OCI image", types.OCIManifestSchema1, image, cfg},
		{"Docker image", types.DockerManifestSchema2, image, cfg},
		{"OCI index", types.OCIImageIndex, `{"schemaVersion":2,"manifests":[]}`, ""},
		{"Docker list", types.DockerManifestList, `{"schemaVersion":2,"manifests":[]}`, ""},
		{"not JSON", types.OCIManifestSchema1, `{`, ""},
		{"no config", types.OCIManifestSchema1, `{"schemaVersion":2}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := configOf(proxy.Manifest{Bytes: []byte(tt.bytes), MediaType: tt.mt}); got != tt.want {
				t.Errorf("configOf = %q, want %q", got, tt.want)
			}
		})
	}
}
