package proxy

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestFilterReferrers(t *testing.T) {
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"digest":"sha256:a","artifactType":"x","annotations":{"k":"v"},"future":1},` +
		`{"digest":"sha256:b","artifactType":"y"},{"digest":"sha256:c"}],"annotations":{"i":"j"}}`
	tests := []struct {
		artifactType string
		want         []string
	}{
		{"x", []string{`{"digest":"sha256:a","artifactType":"x","annotations":{"k":"v"},"future":1}`}},
		{"y", []string{`{"digest":"sha256:b","artifactType":"y"}`}},
		{"z", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.artifactType, func(t *testing.T) {
			b, err := filterReferrers([]byte(index), tt.artifactType)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Manifests   []json.RawMessage `json:"manifests"`
				Annotations map[string]string `json:"annotations"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Manifests == nil || len(got.Manifests) != len(tt.want) {
				t.Fatalf("kept %s, want %q", got.Manifests, tt.want)
			}
			for i := range tt.want {
				if string(got.Manifests[i]) != tt.want[i] {
					t.Errorf("entry %d: %s, want it as it was: %s", i, got.Manifests[i], tt.want[i])
				}
			}
			if got.Annotations["i"] != "j" {
				t.Errorf("the index's own fields were lost: %s", b)
			}
		})
	}
	if _, err := filterReferrers([]byte("<html>"), "x"); err == nil {
		t.Error("a body that is no index was filtered without error")
	}
}

func TestFiltersApplied(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"artifactType"}, true},
		{[]string{"annotation, artifactType"}, true},
		{[]string{"other", "artifactType"}, true},
		{[]string{"artifactTypes"}, false},
	}
	for _, tt := range tests {
		h := http.Header{"Oci-Filters-Applied": tt.values}
		if got := filtersApplied(h, "artifactType"); got != tt.want {
			t.Errorf("filtersApplied(%q) = %v, want %v", tt.values, got, tt.want)
		}
	}
}
