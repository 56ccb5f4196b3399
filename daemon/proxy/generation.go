package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/tower-reg/tower-reg/layer"
)

// rewriteVersion is part of every generation ID. Bump it when the rewrite's
// output changes for the same inputs, so cached rewrites are not served as
// if they were current.
const rewriteVersion = "towerreg-rewrite-1"

// NewGeneration returns generation number n of set, with its content ID.
func NewGeneration(n int, set layer.Set) (Generation, error) {
	b, err := json.Marshal(set) // map keys marshal sorted: stable
	if err != nil {
		return Generation{}, fmt.Errorf("generation id: %w", err)
	}
	sum := sha256.Sum256(append([]byte(rewriteVersion+"\n"), b...))
	return Generation{ID: hex.EncodeToString(sum[:]), Number: n, Set: set}, nil
}

// StaticLayers is a Layers whose generation never changes.
type StaticLayers struct{ Gen Generation }

// Current implements Layers.
func (s StaticLayers) Current() Generation { return s.Gen }

var _ Layers = StaticLayers{}
