package proxy

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

func TestRecipeID(t *testing.T) {
	l := func(s string) layer.Built {
		h := v1.Hash{Algorithm: "sha256", Hex: s + "0000000000000000000000000000000000000000000000000000000000000000"[len(s):]}
		return layer.Built{TarDigest: h, GzipDigest: h, GzipSize: 1}
	}
	base, err := NewRecipe([]layer.Built{l("a")}, layer.Change{Env: []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := NewGeneration(1, layer.Set{Common: l("a")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		layers []layer.Built
		change layer.Change
		same   bool
	}{
		{"same inputs", []layer.Built{l("a")}, layer.Change{Env: []string{"A=1"}}, true},
		{"another layer", []layer.Built{l("b")}, layer.Change{Env: []string{"A=1"}}, false},
		{"one more layer", []layer.Built{l("a"), l("b")}, layer.Change{Env: []string{"A=1"}}, false},
		{"another env", []layer.Built{l("a")}, layer.Change{Env: []string{"A=2"}}, false},
		{"an entrypoint", []layer.Built{l("a")}, layer.Change{Env: []string{"A=1"}, Entrypoint: []string{"x"}}, false},
		{"cleared entrypoint", []layer.Built{l("a")}, layer.Change{Env: []string{"A=1"}, Entrypoint: []string{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRecipe(tt.layers, tt.change)
			if err != nil {
				t.Fatal(err)
			}
			if (r.ID == base.ID) != tt.same {
				t.Errorf("ID %s vs %s: same=%v, want %v", r.ID, base.ID, r.ID == base.ID, tt.same)
			}
			if r.ID == gen.ID {
				t.Error("a recipe has the ID of a generation")
			}
		})
	}
}
