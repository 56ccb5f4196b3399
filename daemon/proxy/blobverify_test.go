package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestCopyVerified checks the hold-back: a good blob arrives whole, and of a
// bad or truncated one the last chunk never arrives, whatever the sizes and
// chunk boundaries.
func TestCopyVerified(t *testing.T) {
	const chunk = 512 << 10
	sizes := []int{0, 1, 1000, chunk - 1, chunk, chunk + 1, 3 * chunk, 3*chunk + 7}
	for _, size := range sizes {
		blob := bytes.Repeat([]byte{'x', 'y', 'z'}, size/3+1)[:size]
		sum := sha256.Sum256(blob)
		good := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		bad := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(make([]byte, 32))}

		t.Run("good", func(t *testing.T) {
			var out, tee bytes.Buffer
			if err := copyVerified(&out, iotest.HalfReader(bytes.NewReader(blob)), good, &tee); err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if !bytes.Equal(out.Bytes(), blob) {
				t.Fatalf("size %d: wrote %d bytes, want the %d of the blob", size, out.Len(), size)
			}
			if !bytes.Equal(tee.Bytes(), blob) {
				t.Fatalf("size %d: the tee got %d bytes, want the %d of the blob in order", size, tee.Len(), size)
			}
		})
		t.Run("mismatch", func(t *testing.T) {
			var out bytes.Buffer
			err := copyVerified(&out, bytes.NewReader(blob), bad, nil)
			if !errors.Is(err, errBlobMismatch) {
				t.Fatalf("size %d: error %v, want a mismatch", size, err)
			}
			if size > 0 && out.Len() >= size {
				t.Fatalf("size %d: all %d bytes of a bad blob were written", size, out.Len())
			}
		})
		if size == 0 {
			continue
		}
		t.Run("truncated", func(t *testing.T) {
			var out bytes.Buffer
			src := io.MultiReader(bytes.NewReader(blob[:size/2]), iotest.ErrReader(io.ErrUnexpectedEOF))
			err := copyVerified(&out, src, good, nil)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("size %d: error %v, want the upstream's unexpected EOF", size, err)
			}
			if out.Len() >= size/2 && size/2 > 0 {
				t.Fatalf("size %d: all %d bytes read were written before the error", size, out.Len())
			}
		})
	}
}
