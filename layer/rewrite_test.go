package layer

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// update rewrites testdata/*.golden. It is shared by every test of the
// package: register no other flag of that name.
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGoldenUpdateOff fails a run made with -update, so that a run that
// rewrote the goldens can never pass as a check of them.
func TestGoldenUpdateOff(t *testing.T) {
	if *update {
		t.Fatal("-update rewrote testdata/*.golden: review the diff, then run again without -update")
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkGolden compares got with testdata/name. Goldens hold the output
// indented, for review; compacted back they must equal it byte for byte, so
// they pin the digests too.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%s", name, err, got)
	}
	pretty.WriteByte('\n')
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readTestdata(t, name)
	var compact bytes.Buffer
	if err := json.Compact(&compact, want); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(compact.Bytes(), got) {
		t.Errorf("%s differs (run go test -update to rewrite it)\ngot:\n%s\nwant:\n%s", name, pretty.Bytes(), want)
	}
}

func testHash(s string) v1.Hash {
	h, _, _ := v1.SHA256(strings.NewReader(s))
	return h
}

func testBuilt(hasEntry bool) Built {
	return Built{
		TarDigest:  testHash("tower-reg test layer tar"),
		GzipDigest: testHash("tower-reg test layer gzip"),
		GzipSize:   4242,
		HasEntry:   hasEntry,
		Files:      3,
	}
}

var imageCases = []struct {
	name   string // inputs: testdata/<input>.{manifest,config}.json
	input  string // defaults to name
	entry  bool
	chain  []string // the entrypoint EntrypointEnv must carry
	user   string   // the User that UserEnv must carry; "" for none
	config []string // substrings the new config must hold verbatim
	man    []string // substrings the new manifest must hold verbatim
}{
	{name: "docker-busybox", entry: true, chain: []string{},
		config: []string{`"Busybox Maintainers <busybox@example.com>"`, `"a & b"`, `"container_config":{"Hostname":"b3d1e2f0a5c6"`}},
	{name: "oci-nginx", entry: true, chain: []string{"/docker-entrypoint.sh"},
		config: []string{`"moby.buildkit.buildinfo.v1":"eyJm`, `set -x \u0026\u0026 apt-get`},
		man:    []string{`"x-example-unknown":{"nested":[1,2.50,1e3,"\u00e9"]}`, `"nginx <stable> & friends"`}},
	{name: "oci-nginx-noentry", input: "oci-nginx", entry: false},
	{name: "oci-bare", entry: true, chain: []string{}},
	{name: "docker-spaces", entry: true, user: "app:app",
		chain:  []string{"/opt/my app/bin/run server", "--config", "/etc/my app/conf.yaml", "--banner", `<ready> & "set"`},
		config: []string{`"TOWERREG_ENTRYPOINT=[\"/opt/my app/bin/run server\",\"--config\",\"/etc/my app/conf.yaml\",\"--banner\",\"<ready> & \\\"set\\\"\"]"`}},
	{name: "docker-nullconfig", entry: true, chain: []string{}},
	{name: "oci-reinjected", entry: true, chain: []string{"/docker-entrypoint.sh"}},
	{name: "oci-scratch", entry: true, chain: []string{}},
}

func TestAppendImage(t *testing.T) {
	for _, tc := range imageCases {
		t.Run(tc.name, func(t *testing.T) {
			input := tc.input
			if input == "" {
				input = tc.name
			}
			manifest := readTestdata(t, input+".manifest.json")
			config := readTestdata(t, input+".config.json")
			manifestCopy, configCopy := bytes.Clone(manifest), bytes.Clone(config)
			l := testBuilt(tc.entry)

			img, err := AppendImage(manifest, config, l)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(manifest, manifestCopy) || !bytes.Equal(config, configCopy) {
				t.Fatal("AppendImage modified its inputs")
			}
			again, err := AppendImage(manifest, config, l)
			if err != nil || !reflect.DeepEqual(img, again) {
				t.Fatalf("a second rewrite differs: %v", err)
			}
			checkGolden(t, tc.name+".manifest.golden", img.Manifest)
			checkGolden(t, tc.name+".config.golden", img.Config)
			checkImage(t, manifest, config, img, l, tc.chain, tc.user)
			for _, s := range tc.config {
				if !bytes.Contains(img.Config, []byte(s)) {
					t.Errorf("config lacks %s", s)
				}
			}
			for _, s := range tc.man {
				if !bytes.Contains(img.Manifest, []byte(s)) {
					t.Errorf("manifest lacks %s", s)
				}
			}
		})
	}
}

// checkImage checks what must hold of any rewrite, with go-containerregistry
// as the reader a client would use, and on generic maps for what it drops.
func checkImage(t *testing.T, manifest, config []byte, img Image, l Built, chain []string, user string) {
	t.Helper()
	if d := sha256Of(img.Manifest); d != img.ManifestDigest {
		t.Errorf("ManifestDigest %s, bytes are %s", img.ManifestDigest, d)
	}
	if d := sha256Of(img.Config); d != img.ConfigDigest {
		t.Errorf("ConfigDigest %s, bytes are %s", img.ConfigDigest, d)
	}
	in, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(img.Manifest))
	if err != nil {
		t.Fatalf("new manifest: %v", err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(img.Config))
	if err != nil {
		t.Fatalf("new config: %v", err)
	}
	if m.Config.Digest != img.ConfigDigest || m.Config.Size != int64(len(img.Config)) {
		t.Errorf("manifest names config %s (%d bytes), want %s (%d)", m.Config.Digest, m.Config.Size, img.ConfigDigest, len(img.Config))
	}
	if len(m.Layers) != len(in.Layers)+1 || len(cf.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("%d layers (was %d), %d diff_ids", len(m.Layers), len(in.Layers), len(cf.RootFS.DiffIDs))
	}
	last := m.Layers[len(m.Layers)-1]
	wantType := types.OCILayer
	if in.MediaType == types.DockerManifestSchema2 {
		wantType = types.DockerLayer
	}
	if last.Digest != l.GzipDigest || last.Size != l.GzipSize || last.MediaType != wantType {
		t.Errorf("appended layer %+v", last)
	}
	if id := cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-1]; id != l.TarDigest {
		t.Errorf("appended diff_id %s, want %s", id, l.TarDigest)
	}

	// Everything but the edited keys is as it was.
	mIn, mOut := generic(t, manifest), generic(t, img.Manifest)
	sameExcept(t, "manifest", mIn, mOut, "config", "layers")
	sameExcept(t, "manifest config", obj(mIn["config"]), obj(mOut["config"]), "digest", "size")
	layersOut := mOut["layers"].([]any)
	sameValue(t, "layers", orEmpty(mIn["layers"]), layersOut[:len(layersOut)-1])

	cIn, cOut := generic(t, config), generic(t, img.Config)
	untouched := []string{"rootfs", "history"}
	if l.HasEntry {
		untouched = append(untouched, "config")
	}
	sameExcept(t, "config", cIn, cOut, untouched...)
	sameExcept(t, "rootfs", obj(cIn["rootfs"]), obj(cOut["rootfs"]), "diff_ids")
	hIn, hOut := orEmpty(cIn["history"]), orEmpty(cOut["history"])
	if cIn["history"] == nil && len(in.Layers) > 0 {
		sameValue(t, "history", hIn, hOut)
	} else {
		if len(hOut) != len(hIn)+1 {
			t.Fatalf("history has %d entries, want %d", len(hOut), len(hIn)+1)
		}
		sameValue(t, "history", hIn, hOut[:len(hIn)])
		want := map[string]any{
			"created_by": "tower-reg: appended layer " + l.GzipDigest.Hex[:12],
			"comment":    "tower-reg",
		}
		if created, ok := cIn["created"]; ok {
			want["created"] = created
		}
		sameValue(t, "appended history", want, hOut[len(hOut)-1])
	}
	if l.HasEntry {
		checkEntry(t, obj(cIn["config"]), obj(cOut["config"]), chain, user)
	}
}

// checkEntry checks the entry chain: Entrypoint is the entry, and Env holds
// the original once, everything else as it was. With a user, the config
// starts as RootUser and UserEnv holds the image's User once; without, User
// and Env are as they were.
func checkEntry(t *testing.T, in, out map[string]any, chain []string, user string) {
	t.Helper()
	sameExcept(t, "inner config", in, out, "Entrypoint", "Env", "User")
	sameValue(t, "Entrypoint", []any{EntryPath}, out["Entrypoint"])
	restIn, _ := stripEnv(orEmpty(in["Env"]), EntrypointEnv)
	restIn, _ = stripEnv(restIn, UserEnv)
	restOut, vals := stripEnv(orEmpty(out["Env"]), EntrypointEnv)
	restOut, users := stripEnv(restOut, UserEnv)
	sameValue(t, "Env less "+EntrypointEnv+" and "+UserEnv, restIn, restOut)
	if len(vals) != 1 {
		t.Fatalf("Env has %d %s, want 1", len(vals), EntrypointEnv)
	}
	var got []string
	if err := json.Unmarshal([]byte(vals[0]), &got); err != nil || got == nil {
		t.Fatalf("%s=%s is not a JSON array: %v", EntrypointEnv, vals[0], err)
	}
	if !slices.Equal(got, chain) {
		t.Errorf("%s=%q, want %q", EntrypointEnv, got, chain)
	}
	if user == "" {
		sameValue(t, "User", in["User"], out["User"])
		if len(users) != 0 {
			t.Errorf("Env has %s=%q, want none", UserEnv, users)
		}
		return
	}
	if out["User"] != RootUser {
		t.Errorf("User = %#v, want %q", out["User"], RootUser)
	}
	if !slices.Equal(users, []string{user}) {
		t.Errorf("Env has %s=%q, want [%q]", UserEnv, users, user)
	}
}

// stripEnv splits env into the entries that do not set key and the values
// of those that do.
func stripEnv(env []any, key string) (rest []any, vals []string) {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e.(string), key+"="); ok {
			vals = append(vals, v)
		} else {
			rest = append(rest, e)
		}
	}
	return rest, vals
}

// generic decodes b as go-containerregistry cannot: every key, numbers kept
// as written.
func generic(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orEmpty(v any) []any {
	a, _ := v.([]any)
	return a
}

func sameExcept(t *testing.T, what string, in, out map[string]any, keys ...string) {
	t.Helper()
	in, out = maps.Clone(in), maps.Clone(out)
	for _, k := range keys {
		delete(in, k)
		delete(out, k)
	}
	sameValue(t, what, in, out)
}

func sameValue(t *testing.T, what string, want, got any) {
	t.Helper()
	if wa, ok := want.([]any); ok && len(wa) == 0 {
		want = []any(nil)
	}
	if ga, ok := got.([]any); ok && len(ga) == 0 {
		got = []any(nil)
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s changed:\n got %#v\nwant %#v", what, got, want)
	}
}

// TestAppendImageTwice rewrites a rewritten image, as when an image pulled
// through tower-reg is built upon and pulled again: the chain must not nest.
func TestAppendImageTwice(t *testing.T) {
	manifest := readTestdata(t, "oci-nginx.manifest.json")
	config := readTestdata(t, "oci-nginx.config.json")
	first, err := AppendImage(manifest, config, testBuilt(true))
	if err != nil {
		t.Fatal(err)
	}
	l := testBuilt(true)
	l.GzipDigest, l.TarDigest = testHash("second gzip"), testHash("second tar")
	second, err := AppendImage(first.Manifest, first.Config, l)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, first.Manifest, first.Config, second, l, []string{"/docker-entrypoint.sh"}, "")
}

// ociManifest makes an OCI manifest for config with n layers of type
// layerType, so that malformed configs reach the config checks.
func ociManifest(config string, n int, layerType types.MediaType) []byte {
	var layers []string
	for i := range n {
		layers = append(layers, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":10}`, layerType, testHash(fmt.Sprint(i))))
	}
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[%s]}`,
		types.OCIManifestSchema1, types.OCIConfigJSON, sha256Of([]byte(config)), len(config), strings.Join(layers, ","))
}

func TestAppendImageErrors(t *testing.T) {
	fixture := func(name string) []byte { return readTestdata(t, name) }
	busybox := fixture("docker-busybox.config.json")
	okConfig := `{"rootfs":{"type":"layers","diff_ids":["sha256:` + testHash("0").Hex + `"]},"config":{}}`
	withConfig := func(config string) ([]byte, []byte) {
		return ociManifest(config, 1, types.OCILayer), []byte(config)
	}
	type tc struct {
		name     string
		manifest []byte
		config   []byte
		l        Built
		want     error // nil: an error that is neither sentinel
	}
	cases := []tc{
		{name: "schema1 signed", manifest: fixture("docker-schema1.manifest.json"), want: ErrUnsupported},
		{name: "schema1 no mediaType", manifest: []byte(`{"schemaVersion":1,"fsLayers":[]}`), want: ErrUnsupported},
		{name: "schema1 mediaType", manifest: []byte(`{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}`), want: ErrUnsupported},
		{name: "schemaVersion 3", manifest: []byte(`{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), want: ErrUnsupported},
		{name: "index", manifest: fixture("docker-list.index.json"), want: ErrUnsupported},
		{name: "unknown media type", manifest: []byte(`{"schemaVersion":2,"mediaType":"text/plain"}`), want: ErrUnsupported},
		{name: "not JSON", manifest: []byte("<html>nope</html>"), want: ErrUnsupported},
		{name: "empty", manifest: nil, want: ErrUnsupported},
		{name: "array", manifest: []byte(`[]`), want: ErrUnsupported},
		{name: "truncated", manifest: []byte(`{"schemaVersion":2,"config":{`), want: ErrUnsupported},
		{name: "trailing data", manifest: []byte(`{"schemaVersion":2}{}`), want: ErrUnsupported},
		{name: "duplicate key", manifest: []byte(`{"schemaVersion":2,"Layers":[],"layers":[]}`), want: ErrUnsupported},
		{name: "no config", manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`), want: ErrUnsupported},
		{name: "config not object", manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":"x"}`), want: ErrUnsupported},
		{name: "layers not array", manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + testHash("").Hex + `","size":2},"layers":{}}`), want: ErrUnsupported},
		{name: "bad config digest", manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:xyz","size":2}}`), want: ErrUnsupported},
		{name: "helm chart", manifest: fixture("helm.manifest.json"), config: fixture("helm.config.json"), want: ErrNotImage},
		{name: "buildkit attestation", manifest: fixture("attestation.manifest.json"), config: fixture("attestation.config.json"), want: ErrNotImage},
		{name: "cosign signature", manifest: ociManifest(`{}`, 1, "application/vnd.dev.cosign.simplesigning.v1+json"), config: []byte(`{}`), want: ErrNotImage},
		{name: "OCI artifact manifest", manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/vnd.example","blobs":[]}`), want: ErrNotImage},
		{name: "wrong config blob", manifest: fixture("oci-nginx.manifest.json"), config: busybox},
		{name: "zero layer", manifest: fixture("oci-bare.manifest.json"), config: fixture("oci-bare.config.json"), l: Built{}},
	}
	add := func(name, config string) {
		m, c := withConfig(config)
		cases = append(cases, tc{name: name, manifest: m, config: c})
	}
	add("config not JSON", `{"rootfs":`)
	add("config array", `[]`)
	add("no rootfs", `{"config":{}}`)
	add("rootfs not object", `{"rootfs":[]}`)
	add("diff_ids not array", `{"rootfs":{"diff_ids":"sha256:00"}}`)
	add("diff_ids short", `{"rootfs":{"type":"layers","diff_ids":[]}}`)
	add("history not array", strings.Replace(okConfig, `"config"`, `"history":{},"config"`, 1))
	add("inner config not object", strings.Replace(okConfig, `"config":{}`, `"config":"sh"`, 1))
	add("Entrypoint string", strings.Replace(okConfig, `"config":{}`, `"config":{"Entrypoint":"/bin/sh -c"}`, 1))
	add("Entrypoint numbers", strings.Replace(okConfig, `"config":{}`, `"config":{"Entrypoint":[1]}`, 1))
	add("Env numbers", strings.Replace(okConfig, `"config":{}`, `"config":{"Env":[1]}`, 1))
	add("Env object", strings.Replace(okConfig, `"config":{}`, `"config":{"Env":{}}`, 1))
	add("duplicate Entrypoint", strings.Replace(okConfig, `"config":{}`, `"config":{"Entrypoint":[],"entrypoint":["/x"]}`, 1))

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := c.l
			if c.name != "zero layer" {
				l = testBuilt(true)
			}
			img, err := AppendImage(c.manifest, c.config, l)
			if err == nil {
				t.Fatalf("no error; manifest %s", img.Manifest)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %q is not %q", err, c.want)
			}
			if c.want == nil && (errors.Is(err, ErrNotImage) || errors.Is(err, ErrUnsupported)) {
				t.Errorf("error %q: a broken image must not pass for an artifact or an unsupported type", err)
			}
		})
	}
	// The well-formed control: okConfig itself rewrites.
	m, c := withConfig(okConfig)
	if _, err := AppendImage(m, c, testBuilt(true)); err != nil {
		t.Errorf("control: %v", err)
	}
}

func TestIsImage(t *testing.T) {
	for name, want := range map[string]bool{
		"docker-busybox.manifest.json": true,
		"oci-nginx.manifest.json":      true,
		"oci-bare.manifest.json":       true,
		"oci-scratch.manifest.json":    true,
		"helm.manifest.json":           false,
		"attestation.manifest.json":    false,
		"docker-schema1.manifest.json": false,
		"oci-index.index.json":         false,
		"docker-list.index.json":       false,
	} {
		if got := IsImage(readTestdata(t, name)); got != want {
			t.Errorf("IsImage(%s) = %v, want %v", name, got, want)
		}
	}
	if IsImage([]byte("{")) {
		t.Error("IsImage of malformed JSON")
	}
}

func TestMediaType(t *testing.T) {
	cases := []struct {
		name, manifest string
		want           types.MediaType
		err            error
	}{
		{name: "docker-busybox.manifest.json", want: types.DockerManifestSchema2},
		{name: "oci-nginx.manifest.json", want: types.OCIManifestSchema1},
		{name: "oci-bare.manifest.json", want: types.OCIManifestSchema1}, // no mediaType field
		{name: "helm.manifest.json", want: types.OCIManifestSchema1},     // no mediaType field
		{name: "docker-schema1.manifest.json", want: types.DockerManifestSchema1Signed},
		{name: "oci-index.index.json", want: types.OCIImageIndex},
		{name: "docker-list.index.json", want: types.DockerManifestList},
		{manifest: `{"schemaVersion":2,"manifests":[]}`, want: types.OCIImageIndex},
		{manifest: `{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[]}`, want: types.DockerManifestSchema2},
		{manifest: `{"schemaVersion":1,"fsLayers":[]}`, want: types.DockerManifestSchema1},
		{manifest: `{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}`, want: ociArtifactManifest},
		{manifest: `{"schemaVersion":2}`, err: ErrUnsupported},
		{manifest: `{"mediaType":"application/vnd.oci.image.manifest.v1+json"}`, err: ErrUnsupported},
		{manifest: `{"schemaVersion":"2","manifests":[]}`, err: ErrUnsupported},
		{manifest: `{"schemaVersion":2,"mediaType":7}`, err: ErrUnsupported},
		{manifest: `{"schemaVersion":2,"config":[]}`, err: ErrUnsupported},
		{manifest: `null`, err: ErrUnsupported},
		{manifest: `{"schemaVersion":2,`, err: ErrUnsupported},
	}
	for _, c := range cases {
		b := []byte(c.manifest)
		if c.name != "" {
			b = readTestdata(t, c.name)
		}
		got, err := MediaType(b)
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("MediaType(%s%s) = %q, %v; want %q, %v", c.name, c.manifest, got, err, c.want, c.err)
		}
	}
}

// FuzzAppendImage checks that no input panics and that a success is JSON
// that names its config.
func FuzzAppendImage(f *testing.F) {
	for _, tc := range imageCases {
		if tc.input == "" {
			f.Add(readTestdata(f, tc.name+".manifest.json"), readTestdata(f, tc.name+".config.json"), tc.entry)
		}
	}
	f.Add(readTestdata(f, "docker-schema1.manifest.json"), []byte(nil), true)
	f.Fuzz(func(t *testing.T, manifest, config []byte, entry bool) {
		img, err := AppendImage(manifest, config, testBuilt(entry))
		if err != nil {
			return
		}
		if !json.Valid(img.Manifest) || !json.Valid(img.Config) {
			t.Fatalf("invalid JSON out:\n%s\n%s", img.Manifest, img.Config)
		}
		if !bytes.Contains(img.Manifest, []byte(img.ConfigDigest.String())) {
			t.Fatal("the manifest does not name the new config")
		}
	})
}

// FuzzAppendConfig fuzzes the config under a manifest made to match it, which
// FuzzAppendImage rarely reaches: what go-containerregistry could read
// before the rewrite, it must read after.
func FuzzAppendConfig(f *testing.F) {
	for _, tc := range imageCases {
		if tc.input == "" {
			f.Add(readTestdata(f, tc.name+".config.json"), true)
		}
	}
	f.Fuzz(func(t *testing.T, config []byte, entry bool) {
		in, err := v1.ParseConfigFile(bytes.NewReader(config))
		n := 0
		if err == nil {
			n = len(in.RootFS.DiffIDs)
		}
		img, err := AppendImage(ociManifest(string(config), n, types.OCILayer), config, testBuilt(entry))
		if err != nil {
			return
		}
		if !json.Valid(img.Config) {
			t.Fatalf("invalid JSON out: %s", img.Config)
		}
		if in == nil {
			return
		}
		out, err := v1.ParseConfigFile(bytes.NewReader(img.Config))
		if err != nil {
			t.Fatalf("go-containerregistry read the config, not its rewrite: %v\n%s", err, img.Config)
		}
		if len(out.RootFS.DiffIDs) != n+1 {
			t.Fatalf("%d diff_ids, want %d", len(out.RootFS.DiffIDs), n+1)
		}
		if entry && !slices.Equal(out.Config.Entrypoint, []string{EntryPath}) {
			t.Fatalf("Entrypoint %q", out.Config.Entrypoint)
		}
	})
}

// TestAppendImageKeyCase covers keys spelled otherwise than usual: Docker and
// containerd decode them case-insensitively, so the rewrite must edit the
// key they read, not add a second one beside it.
func TestAppendImageKeyCase(t *testing.T) {
	config := `{"RootFS":{"type":"layers","Diff_IDs":[]},"Config":{"Cmd":["/hello"],"entrypoint":["/bin/sh"]}}`
	img, err := AppendImage(ociManifest(config, 0, types.OCILayer), []byte(config), testBuilt(true))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"RootFS":{"type":"layers","Diff_IDs":["` + testBuilt(true).TarDigest.String() + `"]},` +
		`"Config":{"Cmd":["/hello"],"entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[\"/bin/sh\"]"]},` +
		`"history":[{"created_by":"tower-reg: appended layer ` + testBuilt(true).GzipDigest.Hex[:12] + `","comment":"tower-reg"}]}`
	if string(img.Config) != want {
		t.Errorf("config\n got %s\nwant %s", img.Config, want)
	}
}

// TestEntryChain spells out the inner config the entry chain gives, case by
// case.
func TestEntryChain(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no entrypoint", `{"Cmd":["sh"]}`,
			`{"Cmd":["sh"],"Env":["TOWERREG_ENTRYPOINT=[]"],"Entrypoint":["/.towerreg/entry"]}`},
		{"null", `{"Entrypoint":null,"Env":null}`,
			`{"Entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[]"]}`},
		{"empty", `{"Entrypoint":[]}`,
			`{"Entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[]"]}`},
		{"shell form", `{"Entrypoint":["/bin/sh","-c","exec \"$0\" \"$@\" <&0"]}`,
			`{"Entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[\"/bin/sh\",\"-c\",\"exec \\\"$0\\\" \\\"$@\\\" <&0\"]"]}`},
		{"stale duplicates", `{"Env":["A=1","TOWERREG_ENTRYPOINT=x","B=2","TOWERREG_ENTRYPOINT=y"],"Entrypoint":["/e"]}`,
			`{"Env":["A=1","TOWERREG_ENTRYPOINT=[\"/e\"]","B=2"],"Entrypoint":["/.towerreg/entry"]}`},
		{"similar name", `{"Env":["TOWERREG_ENTRYPOINT_X=1"],"Entrypoint":["/e"]}`,
			`{"Env":["TOWERREG_ENTRYPOINT_X=1","TOWERREG_ENTRYPOINT=[\"/e\"]"],"Entrypoint":["/.towerreg/entry"]}`},
		{"injected before", `{"Entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[\"/a\"]"]}`,
			`{"Entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[\"/a\"]"]}`},
		{"entry without variable", `{"Entrypoint":["/.towerreg/entry"]}`,
			`{"Entrypoint":["/.towerreg/entry"],"Env":["TOWERREG_ENTRYPOINT=[]"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkEdit(t, injectEntry, tc.in, tc.want) })
	}
}

// checkEdit applies edit to the JSON object in and checks the result
// against want, byte for byte.
func checkEdit(t *testing.T, edit func(*object) error, in, want string) {
	t.Helper()
	o, err := parseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := edit(o); err != nil {
		t.Fatal(err)
	}
	if got, _ := marshal(o); string(got) != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}
