package api

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestClosureCacheBounded: the closures of token images are kept, up to
// maxClosures; past that the cache starts over instead of growing.
func TestClosureCacheBounded(t *testing.T) {
	hash := func(i int) v1.Hash {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(b[:])
		return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
	}
	var c closureCache
	for i := range 3 * maxClosures {
		c.put(hash(i), map[v1.Hash]bool{hash(i): true})
		if ds, ok := c.get(hash(i)); !ok || !ds[hash(i)] {
			t.Fatalf("closure %d not kept", i)
		}
		if n := len(c.m); n > maxClosures {
			t.Fatalf("%d closures kept, over the bound of %d", n, maxClosures)
		}
	}
}
