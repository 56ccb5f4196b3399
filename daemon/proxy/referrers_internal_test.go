package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
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

func TestNextLink(t *testing.T) {
	base, _ := url.Parse("https://reg.example/v2/a/referrers/sha256:x")
	tests := []struct {
		name   string
		values []string
		want   string
		err    bool
	}{
		{"none", nil, "", false},
		{"relative", []string{`</v2/a/referrers/sha256:x?last=b>; rel="next"`}, "https://reg.example/v2/a/referrers/sha256:x?last=b", false},
		{"absolute, same registry", []string{`<https://reg.example/p?n=2>; rel=next`}, "https://reg.example/p?n=2", false},
		{"other rels only", []string{`</p>; rel="prev", </q>; rel="first"`}, "", false},
		{"next among several", []string{`</p>; rel="prev", </q>; title="t"; rel="next"`}, "https://reg.example/q", false},
		{"in a second header", []string{`</p>; rel="prev"`, `</q>; rel="next"`}, "https://reg.example/q", false},
		{"rel with several values", []string{`</q>; rel="next last"`}, "https://reg.example/q", false},
		{"other host", []string{`<https://evil.example/p>; rel="next"`}, "", true},
		{"other port", []string{`<https://reg.example:444/p>; rel="next"`}, "", true},
		{"down to http", []string{`<http://reg.example/p>; rel="next"`}, "", true},
		{"no brackets", []string{`/p; rel="next"`}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := nextLink(base, http.Header{"Link": tt.values})
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("nextLink = %q, %v; want %q, error %v", got, err, tt.want, tt.err)
			}
			if err != nil && !errors.Is(err, ErrBadAnswer) {
				t.Errorf("error %v is no ErrBadAnswer", err)
			}
		})
	}
}
