package event

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAllKinds finds every struct of this package that embeds Meta (every
// event type) in the source, and checks that all lists it, so that no
// event is lost on the wire.
func TestAllKinds(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fld := range st.Fields.List {
				if id, ok := fld.Type.(*ast.Ident); ok && len(fld.Names) == 0 && id.Name == "Meta" {
					found = append(found, ts.Name.Name)
				}
			}
			return true
		})
	}
	if len(found) == 0 {
		t.Fatal("found no event types in the source")
	}
	var listed []string
	for _, e := range all {
		listed = append(listed, Kind(e))
	}
	slices.Sort(found)
	slices.Sort(listed)
	if !slices.Equal(found, listed) {
		t.Errorf("event types in the source %v, in all %v", found, listed)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	tests := []Event{
		ManifestServed{Meta: Meta{Time: at}, Repo: "index.docker.io/library/busybox", Reference: "latest", Status: 200, Platforms: []string{"linux/amd64"}},
		BlobServed{Meta: Meta{Time: at}, Digest: "sha256:00", Bytes: 42, Source: "store"},
		LayerPacked{Meta: Meta{Time: at}, Generation: 3, Files: 7, Duration: time.Second},
	}
	for _, e := range tests {
		t.Run(Kind(e), func(t *testing.T) {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(Kind(e), b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("round trip: %+v, want %+v", got, e)
			}
		})
	}
	if _, err := Decode("NoSuchEvent", []byte("{}")); err == nil {
		t.Error("an unknown kind was decoded")
	}
	if _, err := Decode("BlobServed", []byte("[")); err == nil {
		t.Error("bad JSON was decoded")
	}
}
