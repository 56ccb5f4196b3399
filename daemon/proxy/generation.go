package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

// Generation is one packed layer set: the layers injected into every image
// while it is current.
type Generation struct {
	// ID changes exactly when the layers change; it keys the rewrite cache.
	ID string
	// Number counts generations since the daemon started.
	Number int
	Set    layer.Set
}

// Layers gives the current generation.
type Layers interface {
	Current() Generation
	// Settled is the current generation once the layer changes already
	// under way are in it (bounded): what a pull by tag serves.
	Settled(ctx context.Context) Generation
}

// rewriteVersion is part of every generation ID. Bump it when the rewrite's
// output changes for the same inputs, so cached rewrites are not served as
// if they were current.
const rewriteVersion = "towerreg-rewrite-1"

// NewGeneration returns generation number n of set, with its content ID.
func NewGeneration(n int, set layer.Set) (Generation, error) {
	id, err := contentID(set)
	if err != nil {
		return Generation{}, fmt.Errorf("generation id: %w", err)
	}
	return Generation{ID: id, Number: n, Set: set}, nil
}

// Recipe is what a rewrite does to an upstream image: the layers it
// appends, for the image's platform, and a change to its config.
type Recipe struct {
	// ID changes exactly when the output would: it keys the rewrite cache.
	ID string
	// Set gives one layer per platform (a generation of the layer
	// directory); Layers, when not nil, are appended to every platform
	// instead (a container token's).
	Set    layer.Set
	Layers []layer.Built
	Change layer.Change
}

// Recipe returns the recipe of the generation: its layer, nothing else.
func (g Generation) Recipe() Recipe { return Recipe{ID: g.ID, Set: g.Set} }

func (r Recipe) layersFor(p *v1.Platform) []layer.Built {
	if r.Layers != nil {
		return r.Layers
	}
	return []layer.Built{r.Set.For(p)}
}

// NewRecipe returns the recipe that appends ls and applies ch, with its ID.
func NewRecipe(ls []layer.Built, ch layer.Change) (Recipe, error) {
	if ls == nil {
		ls = []layer.Built{}
	}
	r := Recipe{Layers: ls, Change: ch}
	id, err := contentID(struct {
		Layers []layer.Built `json:"layers"`
		Change layer.Change  `json:"change"`
	}{ls, ch})
	if err != nil {
		return Recipe{}, fmt.Errorf("recipe id: %w", err)
	}
	r.ID = id
	return r, nil
}

// NewRecipeForSet returns the recipe that appends set's layer for each
// platform and applies ch: a pinned generation with a token's changes.
func NewRecipeForSet(set layer.Set, ch layer.Change) (Recipe, error) {
	id, err := contentID(struct {
		Set    layer.Set    `json:"set"`
		Change layer.Change `json:"change"`
	}{set, ch})
	if err != nil {
		return Recipe{}, fmt.Errorf("recipe id: %w", err)
	}
	return Recipe{ID: id, Set: set, Change: ch}, nil
}

// contentID hashes v's JSON with the rewrite version.
func contentID(v any) (string, error) {
	b, err := json.Marshal(v) // map keys marshal sorted: stable
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append([]byte(rewriteVersion+"\n"), b...))
	return hex.EncodeToString(sum[:]), nil
}

// StaticLayers is a Layers whose generation never changes.
type StaticLayers struct{ Gen Generation }

// Current implements Layers.
func (s StaticLayers) Current() Generation { return s.Gen }

// Settled implements Layers.
func (s StaticLayers) Settled(context.Context) Generation { return s.Gen }

var _ Layers = StaticLayers{}
