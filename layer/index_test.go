package layer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var indexCases = []struct {
	name      string // input: testdata/<name>.index.json
	platforms []string
}{
	// Left out: the attestation, the unknown/unknown image and the nested
	// Windows index.
	{name: "oci-index", platforms: []string{"linux/amd64", "linux/arm64/v8"}},
	{name: "docker-list", platforms: []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8"}},
}

// replacement is a made-up rewrite of old, the same on every run.
func replacement(old v1.Hash, i int) v1.Descriptor {
	return v1.Descriptor{Digest: testHash(fmt.Sprintf("rewritten %d %s", i, old)), Size: int64(2000 + i)}
}

func TestImageEntries(t *testing.T) {
	for _, tc := range indexCases {
		t.Run(tc.name, func(t *testing.T) {
			index := readTestdata(t, tc.name+".index.json")
			entries, err := ImageEntries(index)
			if err != nil {
				t.Fatal(err)
			}
			var platforms []string
			for _, e := range entries {
				platforms = append(platforms, e.Platform.String())
				if !e.MediaType.IsImage() {
					t.Errorf("%s: media type %s", e.Digest, e.MediaType)
				}
			}
			if !reflect.DeepEqual(platforms, tc.platforms) {
				t.Errorf("platforms %q, want %q", platforms, tc.platforms)
			}
			b, err := json.Marshal(entries)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name+".entries.golden", b)
		})
	}
}

func TestRewriteIndex(t *testing.T) {
	for _, tc := range indexCases {
		t.Run(tc.name, func(t *testing.T) {
			index := readTestdata(t, tc.name+".index.json")
			indexCopy := bytes.Clone(index)
			entries, err := ImageEntries(index)
			if err != nil {
				t.Fatal(err)
			}
			repl := replaceAll(entries)

			got, digest, err := RewriteIndex(index, repl)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(index, indexCopy) {
				t.Fatal("RewriteIndex modified its input")
			}
			again, digest2, err := RewriteIndex(index, repl)
			if err != nil || !bytes.Equal(got, again) || digest != digest2 {
				t.Fatalf("a second rewrite differs: %v", err)
			}
			if digest != sha256Of(got) {
				t.Errorf("digest %s, bytes are %s", digest, sha256Of(got))
			}
			checkGolden(t, tc.name+".index.golden", got)
			checkIndex(t, index, got, repl)
		})
	}
}

// replaceAll replaces every entry with a made-up rewrite.
func replaceAll(entries []IndexEntry) []Replacement {
	var repl []Replacement
	for i, e := range entries {
		repl = append(repl, Replacement{Index: e.Index, Old: e.Digest, New: replacement(e.Digest, i)})
	}
	return repl
}

// checkIndex checks that out is in with exactly the digests and sizes of
// repl's children swapped.
func checkIndex(t *testing.T, in, out []byte, repl []Replacement) {
	t.Helper()
	before, err := v1.ParseIndexManifest(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	after, err := v1.ParseIndexManifest(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("new index: %v", err)
	}
	if after.MediaType != before.MediaType || len(after.Manifests) != len(before.Manifests) {
		t.Fatalf("index went from %s with %d children to %s with %d",
			before.MediaType, len(before.Manifests), after.MediaType, len(after.Manifests))
	}
	byIndex := map[int]v1.Descriptor{}
	for _, r := range repl {
		byIndex[r.Index] = r.New
	}
	for i, b := range before.Manifests {
		want := b
		if r, ok := byIndex[i]; ok {
			want.Digest, want.Size = r.Digest, r.Size
		}
		if !reflect.DeepEqual(after.Manifests[i], want) {
			t.Errorf("manifests[%d] = %+v, want %+v", i, after.Manifests[i], want)
		}
	}
	gIn, gOut := generic(t, in), generic(t, out)
	sameExcept(t, "index", gIn, gOut, "manifests")
	for i, c := range orEmpty(gIn["manifests"]) {
		sameExcept(t, "child", obj(c), obj(orEmpty(gOut["manifests"])[i]), "digest", "size")
	}
}

func TestRewriteIndexEmpty(t *testing.T) {
	index := readTestdata(t, "oci-index.index.json")
	got, digest, err := RewriteIndex(index, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, index) || digest != sha256Of(index) {
		t.Error("an index with nothing to replace changed")
	}
}

// TestRewriteIndexSameImageTwice covers one manifest listed for two
// platforms: each child takes its own replacement, as each platform may get
// its own layer.
func TestRewriteIndexSameImageTwice(t *testing.T) {
	d := testHash("shared")
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d.String() + `","size":10,"platform":{"os":"linux","architecture":"amd64"}},` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d.String() + `","size":10,"platform":{"os":"linux","architecture":"amd64","variant":"v3"}}]}`
	entries, err := ImageEntries([]byte(index))
	if err != nil || len(entries) != 2 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	if entries[0].Index != 0 || entries[1].Index != 1 {
		t.Fatalf("positions %d, %d", entries[0].Index, entries[1].Index)
	}
	repl := replaceAll(entries)
	if repl[0].New.Digest == repl[1].New.Digest {
		t.Fatal("the test needs two different replacements")
	}
	got, _, err := RewriteIndex([]byte(index), repl)
	if err != nil {
		t.Fatal(err)
	}
	checkIndex(t, []byte(index), got, repl)
}

func TestIndexErrors(t *testing.T) {
	image := string(readTestdata(t, "docker-busybox.manifest.json"))
	child := func(fields string) string {
		return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{` + fields + `}]}`
	}
	d := testHash("x").String()
	for _, tc := range []struct {
		name, index string
	}{
		{"image manifest", image},
		{"schema1", string(readTestdata(t, "docker-schema1.manifest.json"))},
		{"not JSON", "index"},
		{"truncated", `{"schemaVersion":2,"manifests":[`},
		{"manifests not array", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}`},
		{"child not object", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[1]}`},
		{"child duplicate key", child(`"digest":"` + d + `","Digest":"` + d + `"`)},
		{"image without digest", child(`"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1`)},
		{"image bad digest", child(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:zz","size":1`)},
		{"platform not object", child(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d + `","platform":"linux"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ImageEntries([]byte(tc.index)); !errors.Is(err, ErrUnsupported) {
				t.Errorf("ImageEntries: %v, want %v", err, ErrUnsupported)
			}
			if !strings.HasPrefix(tc.name, "image ") && tc.name != "platform not object" {
				repl := []Replacement{{Index: 0, Old: testHash("x"), New: replacement(testHash("x"), 0)}}
				if _, _, err := RewriteIndex([]byte(tc.index), repl); !errors.Is(err, ErrUnsupported) {
					t.Errorf("RewriteIndex: %v, want %v", err, ErrUnsupported)
				}
			}
		})
	}

	index := readTestdata(t, "oci-index.index.json")
	entries, err := ImageEntries(index)
	if err != nil {
		t.Fatal(err)
	}
	missing := testHash("not listed")
	for _, r := range []Replacement{
		{Index: entries[0].Index, Old: missing, New: replacement(missing, 0)},
		{Index: 99, Old: entries[0].Digest, New: replacement(missing, 0)},
		{Index: -1, Old: entries[0].Digest, New: replacement(missing, 0)},
		{Index: entries[0].Index, Old: entries[0].Digest},
	} {
		if _, _, err := RewriteIndex(index, []Replacement{r}); err == nil || !strings.Contains(err.Error(), r.Old.String()) && r.New.Size > 0 {
			t.Errorf("replacement %+v: %v", r, err)
		}
	}

	// An artifact child with a broken digest is not ours to judge.
	ok := child(`"mediaType":"application/vnd.example.sbom","digest":"md5:nope"`)
	if entries, err := ImageEntries([]byte(ok)); err != nil || len(entries) != 0 {
		t.Errorf("broken artifact child: %v, %v", entries, err)
	}
}

// FuzzRewriteIndex checks that no index panics, and that a rewrite is JSON.
func FuzzRewriteIndex(f *testing.F) {
	for _, tc := range indexCases {
		f.Add(readTestdata(f, tc.name+".index.json"))
	}
	f.Fuzz(func(t *testing.T, index []byte) {
		entries, err := ImageEntries(index)
		if err != nil {
			return
		}
		out, _, err := RewriteIndex(index, replaceAll(entries))
		if err != nil {
			t.Fatalf("RewriteIndex after ImageEntries: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}

// TestChildren checks that the children ImageEntries leaves out are still
// listed: a client of the index may fetch them by digest.
func TestChildren(t *testing.T) {
	for _, tc := range indexCases {
		t.Run(tc.name, func(t *testing.T) {
			index := readTestdata(t, tc.name+".index.json")
			parsed, err := v1.ParseIndexManifest(bytes.NewReader(index))
			if err != nil {
				t.Fatal(err)
			}
			var want []v1.Hash
			for _, m := range parsed.Manifests {
				want = append(want, m.Digest)
			}
			got, err := Children(index)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Children = %v, want %v", got, want)
			}
			entries, err := ImageEntries(index)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "oci-index" && len(got) <= len(entries) {
				t.Errorf("%d children, %d to rewrite: the test data should have children that are kept", len(got), len(entries))
			}
		})
	}
	if _, err := Children([]byte(`{"schemaVersion":2}`)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no index: %v", err)
	}
}
