package layer

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestApplyImage covers what a container token asks of an image: several
// layers, and config changes, with and without the entry among the layers.
func TestApplyImage(t *testing.T) {
	plain := func(s string) Built {
		return Built{TarDigest: testHash(s + " tar"), GzipDigest: testHash(s + " gzip"), GzipSize: 100 + int64(len(s))}
	}
	withEntry := testBuilt(true)
	// oci-nginx: Entrypoint ["/docker-entrypoint.sh"], Cmd ["nginx" ...].
	tests := []struct {
		name       string
		layers     []Built
		change     Change
		entrypoint []string
		chain      []string // nil: no entry, no variable
		cmd        []string // nil: the image's
		workingDir string   // "": the image's
		env        []string // must be in Env, in this order, at the end
	}{
		{name: "layers only", layers: []Built{plain("a"), plain("b")},
			entrypoint: []string{"/docker-entrypoint.sh"}},
		{name: "all changes", layers: []Built{plain("a")},
			change:     Change{Entrypoint: []string{"/bin/app", "--x y"}, Cmd: []string{"run"}, Env: []string{"A=1", "B=two words"}, WorkingDir: "/work"},
			entrypoint: []string{"/bin/app", "--x y"}, cmd: []string{"run"}, workingDir: "/work", env: []string{"A=1", "B=two words"}},
		{name: "entry chains to the new entrypoint", layers: []Built{plain("a"), withEntry},
			change:     Change{Entrypoint: []string{"/bin/app"}},
			entrypoint: []string{EntryPath}, chain: []string{"/bin/app"}},
		{name: "entry chains to the image's entrypoint", layers: []Built{withEntry},
			change:     Change{Env: []string{"A=1"}},
			entrypoint: []string{EntryPath}, chain: []string{"/docker-entrypoint.sh"}, env: []string{"A=1"}},
		{name: "entrypoint cleared", layers: []Built{plain("a")},
			change:     Change{Entrypoint: []string{}},
			entrypoint: []string{}},
		{name: "no layers, a change", change: Change{Cmd: []string{"sh"}},
			entrypoint: []string{"/docker-entrypoint.sh"}, cmd: []string{"sh"}},
	}
	manifest := readTestdata(t, "oci-nginx.manifest.json")
	config := readTestdata(t, "oci-nginx.config.json")
	base, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		t.Fatal(err)
	}
	baseManifest, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := ApplyImage(manifest, config, tt.layers, tt.change)
			if err != nil {
				t.Fatal(err)
			}
			if img.ConfigDigest != sha256Of(img.Config) || img.ManifestDigest != sha256Of(img.Manifest) {
				t.Fatal("digests are not those of the bytes")
			}
			m, err := v1.ParseManifest(bytes.NewReader(img.Manifest))
			if err != nil {
				t.Fatal(err)
			}
			cf, err := v1.ParseConfigFile(bytes.NewReader(img.Config))
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Digest != img.ConfigDigest || m.Config.Size != int64(len(img.Config)) {
				t.Errorf("manifest config descriptor %v", m.Config)
			}
			n := len(baseManifest.Layers)
			if len(m.Layers) != n+len(tt.layers) || len(cf.RootFS.DiffIDs) != n+len(tt.layers) {
				t.Fatalf("%d layers, %d diff_ids; want %d", len(m.Layers), len(cf.RootFS.DiffIDs), n+len(tt.layers))
			}
			if len(cf.History) != len(base.History)+len(tt.layers) {
				t.Errorf("%d history entries, want %d", len(cf.History), len(base.History)+len(tt.layers))
			}
			for i, l := range tt.layers {
				if m.Layers[n+i].Digest != l.GzipDigest || m.Layers[n+i].Size != l.GzipSize || cf.RootFS.DiffIDs[n+i] != l.TarDigest {
					t.Errorf("layer %d: %v / %s, want %s %d / %s", i, m.Layers[n+i].Digest, cf.RootFS.DiffIDs[n+i], l.GzipDigest, l.GzipSize, l.TarDigest)
				}
			}
			if !reflect.DeepEqual(orNone(cf.Config.Entrypoint), tt.entrypoint) {
				t.Errorf("Entrypoint %q, want %q", cf.Config.Entrypoint, tt.entrypoint)
			}
			wantCmd := tt.cmd
			if wantCmd == nil {
				wantCmd = base.Config.Cmd
			}
			if !reflect.DeepEqual(cf.Config.Cmd, wantCmd) {
				t.Errorf("Cmd %q, want %q", cf.Config.Cmd, wantCmd)
			}
			wantDir := tt.workingDir
			if wantDir == "" {
				wantDir = base.Config.WorkingDir
			}
			if cf.Config.WorkingDir != wantDir {
				t.Errorf("WorkingDir %q, want %q", cf.Config.WorkingDir, wantDir)
			}
			var chain []string
			var rest []string
			for _, e := range cf.Config.Env {
				if v, ok := strings.CutPrefix(e, EntrypointEnv+"="); ok {
					if err := json.Unmarshal([]byte(v), &chain); err != nil {
						t.Fatalf("%s: %v", e, err)
					}
					continue
				}
				rest = append(rest, e)
			}
			if !reflect.DeepEqual(chain, tt.chain) {
				t.Errorf("chain %q, want %q", chain, tt.chain)
			}
			if want := append(slices.Clone(base.Config.Env), tt.env...); !reflect.DeepEqual(rest, want) {
				t.Errorf("Env %q, want %q", rest, want)
			}
		})
	}
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestApplyImageErrors(t *testing.T) {
	manifest := readTestdata(t, "oci-nginx.manifest.json")
	config := readTestdata(t, "oci-nginx.config.json")
	for _, tt := range []struct {
		name   string
		layers []Built
		change Change
		want   string
	}{
		{"env without =", nil, Change{Env: []string{"A"}}, `env "A" is not K=V`},
		{"env without name", nil, Change{Env: []string{"=1"}}, `env "=1" is not K=V`},
		{"zero layer", []Built{{}}, Change{}, "not sha256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ApplyImage(manifest, config, tt.layers, tt.change)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
