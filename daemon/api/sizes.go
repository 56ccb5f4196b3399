package api

import (
	"encoding/json"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// maxBlobSizes bounds the sizes remembered: a pull's blobs follow its
// manifest within seconds, so a few thousand cover every pull in flight.
const maxBlobSizes = 4096

// blobSizes remembers the sizes that the image manifests served named for
// their config and layers. A redirect sends none of a blob and the daemon
// never learns its length from the far store; the manifest the client
// pulls it by is the only place the daemon sees it, and what the
// accounting counts as the bytes a redirect saved.
type blobSizes struct {
	mu sync.Mutex
	m  map[string]int64
}

func newBlobSizes() *blobSizes { return &blobSizes{m: map[string]int64{}} }

// record notes the sizes of the blobs an image manifest names; an index,
// which names manifests, adds none.
func (s *blobSizes) record(m proxy.Manifest) {
	if m.MediaType != types.OCIManifestSchema1 && m.MediaType != types.DockerManifestSchema2 {
		return
	}
	type desc struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	}
	var v struct {
		Config desc   `json:"config"`
		Layers []desc `json:"layers"`
	}
	if json.Unmarshal(m.Bytes, &v) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range append(v.Layers, v.Config) {
		if d.Digest == "" || d.Size <= 0 {
			continue
		}
		if _, ok := s.m[d.Digest]; !ok && len(s.m) >= maxBlobSizes {
			s.evictOne()
		}
		s.m[d.Digest] = d.Size
	}
}

// evictOne forgets an arbitrary entry: Go's map order is random enough to
// keep the memory bounded without the bookkeeping of an LRU, and a size
// forgotten only leaves one redirect's saving uncounted.
func (s *blobSizes) evictOne() {
	for k := range s.m {
		delete(s.m, k)
		return
	}
}

// size is the size a served manifest gave digest d, and whether one did.
func (s *blobSizes) size(d string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[d]
	return n, ok
}
