package token

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/layer"
)

// TestContainerConfigChange: a request's config change is a layer.Change,
// and a request that changes nothing has none (the token then keeps the
// plain generation's recipe).
func TestContainerConfigChange(t *testing.T) {
	tests := []struct {
		name string
		cc   *ContainerConfig
		want *layer.Change
	}{
		{"no containerConfig", nil, nil},
		{"layers only", &ContainerConfig{Layers: []fetch.Layer{{Location: "http://127.0.0.1/l.tgz"}}}, nil},
		{"env only", &ContainerConfig{Env: []string{"A=1"}}, &layer.Change{Env: []string{"A=1"}}},
		{"everything", &ContainerConfig{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "true"}, Env: []string{"A=1"}, WorkingDir: "/w"},
			&layer.Change{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "true"}, Env: []string{"A=1"}, WorkingDir: "/w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cc.Change(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Change() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestRecordConfigOldSpelling: a record saved while the config was its own
// type, with its empty lists omitted, reads back as the same change.
func TestRecordConfigOldSpelling(t *testing.T) {
	tests := []struct {
		name, saved string
		want        *layer.Change
	}{
		{"none", `{"short":"wt_a"}`, nil},
		{"env only", `{"short":"wt_a","config":{"env":["A=1"]}}`, &layer.Change{Env: []string{"A=1"}}},
		{"entrypoint and workdir", `{"short":"wt_a","config":{"entrypoint":["/e"],"workingDir":"/w"}}`,
			&layer.Change{Entrypoint: []string{"/e"}, WorkingDir: "/w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Any digest: the image is not what is tested.
			img := `"image":{"registry":"127.0.0.1:5000","repository":"app","reference":"v1","digest":"sha256:` + strings.Repeat("a", 64) + `"},`
			var r Record
			if err := json.Unmarshal([]byte(strings.Replace(tt.saved, "{", "{"+img, 1)), &r); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Config, tt.want) {
				t.Fatalf("Config = %+v, want %+v", r.Config, tt.want)
			}
			// What it is saved as now reads back the same.
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var again Record
			if err := json.Unmarshal(b, &again); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again.Config, tt.want) {
				t.Fatalf("after a save, Config = %+v, want %+v", again.Config, tt.want)
			}
		})
	}
}
