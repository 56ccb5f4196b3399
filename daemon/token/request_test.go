package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/fetch"
)

var (
	dGzip = "sha256:" + strings.Repeat("ab", 32)
	dTar  = "sha256:" + strings.Repeat("cd", 32)
)

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// layerJSON is one layer of a request, with one field replaced or removed
// (a nil value) when the test says so.
func layerJSON(override map[string]any) string {
	m := map[string]any{"location": "https://layers.example/l.tar.gz", "gzipDigest": dGzip, "gzipSize": 13219265, "tarDigest": dTar}
	for k, v := range override {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestDecodeRequestGood(t *testing.T) {
	l := fetch.Layer{Location: "https://layers.example/l.tar.gz", GzipDigest: mustHash(t, dGzip), GzipSize: 13219265, TarDigest: mustHash(t, dTar)}
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"image only", `{"containerImage":"busybox"}`, Request{ContainerImage: "busybox"}},
		{"white space", " \n{ \"containerImage\" : \"busybox:1.36\" }\n", Request{ContainerImage: "busybox:1.36"}},
		{"null config", `{"containerImage":"busybox","containerConfig":null}`, Request{ContainerImage: "busybox"}},
		{"empty config is none", `{"containerImage":"busybox","containerConfig":{}}`, Request{ContainerImage: "busybox"}},
		{"empty lists are none", `{"containerImage":"busybox","containerConfig":{"layers":[],"entrypoint":[],"cmd":null,"env":[],"workingDir":""}}`, Request{ContainerImage: "busybox"}},
		{"digest reference", `{"containerImage":"quay.io/nextflow/bash@` + dGzip + `"}`, Request{ContainerImage: "quay.io/nextflow/bash@" + dGzip}},
		{"loopback registry", `{"containerImage":"127.0.0.1:5000/team/app:v1"}`, Request{ContainerImage: "127.0.0.1:5000/team/app:v1"}},
		{"full", `{"containerImage":"quay.io/nextflow/bash:latest","containerConfig":{"layers":[` + layerJSON(nil) + `,` + layerJSON(map[string]any{"location": "file:///tmp/x.tar.gz"}) + `],
			"entrypoint":["/bin/sh","-c"],"cmd":["echo hi"],"env":["A=1","B=","C=x=y"],"workingDir":"/work"}}`,
			Request{ContainerImage: "quay.io/nextflow/bash:latest", ContainerConfig: &ContainerConfig{
				Layers:     []fetch.Layer{l, {Location: "file:///tmp/x.tar.gz", GzipDigest: l.GzipDigest, GzipSize: l.GzipSize, TarDigest: l.TarDigest}},
				Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}, Env: []string{"A=1", "B=", "C=x=y"}, WorkingDir: "/work",
			}}},
		{"env only", `{"containerImage":"busybox","containerConfig":{"env":["DEBUG=1"]}}`, Request{ContainerImage: "busybox", ContainerConfig: &ContainerConfig{Env: []string{"DEBUG=1"}}}},
		{"http loopback layer", `{"containerImage":"busybox","containerConfig":{"layers":[` + layerJSON(map[string]any{"location": "http://127.0.0.1:8000/l.tgz"}) + `]}}`,
			Request{ContainerImage: "busybox", ContainerConfig: &ContainerConfig{Layers: []fetch.Layer{{Location: "http://127.0.0.1:8000/l.tgz", GzipDigest: l.GzipDigest, GzipSize: l.GzipSize, TarDigest: l.TarDigest}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(strings.NewReader(tt.body))
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeRequest =\n%+v\nwant\n%+v", got, tt.want)
			}
			roundTrip(t, got)
		})
	}
}

func TestDecodeRequestBad(t *testing.T) {
	withLayer := func(override map[string]any) string {
		return `{"containerImage":"busybox","containerConfig":{"layers":[` + layerJSON(nil) + `,` + layerJSON(override) + `]}}`
	}
	withConfig := func(cfg string) string { return `{"containerImage":"busybox","containerConfig":` + cfg + `}` }
	tests := []struct {
		name  string
		body  string
		field string
		msg   string
	}{
		{"empty body", ``, "", "must be a JSON object"},
		{"not an object", `[1]`, "", "must be a JSON object"},
		{"null", `null`, "", "must be an object"},
		{"trailing data", `{"containerImage":"busybox"} {}`, "", "data after the object"},
		{"trailing garbage", `{"containerImage":"busybox"}x`, "", "data after the object"},
		{"syntax error", `{"containerImage":"busybox",}`, "", "invalid character"},
		{"duplicate key", `{"containerImage":"alpine","containerImage":"busybox"}`, "containerImage", "given twice"},
		{"duplicate layer key", withConfig(`{"layers":[` + strings.Replace(layerJSON(nil), `"gzipSize":13219265`, `"gzipSize":1,"gzipSize":2`, 1) + `]}`), "containerConfig.layers[0].gzipSize", "given twice"},
		{"no image", `{}`, "containerImage", "required"},
		{"empty image", `{"containerImage":""}`, "containerImage", "required"},
		{"image not a string", `{"containerImage":42}`, "containerImage", "must be a string"},
		{"bad image", `{"containerImage":"Not A/Valid::ref"}`, "containerImage", "could not parse reference"},
		{"long image", `{"containerImage":"` + strings.Repeat("a", 1100) + `"}`, "containerImage", "longer than"},
		{"unknown top field", `{"containerImage":"busybox","extra":1}`, "extra", "unknown field"},
		{"field case", `{"ContainerImage":"busybox"}`, "ContainerImage", "unknown field"},
		{"unknown config field", withConfig(`{"user":"root"}`), "containerConfig.user", "unknown field"},
		{"config not object", withConfig(`"x"`), "containerConfig", "must be a JSON object"},
		{"layers not array", withConfig(`{"layers":{}}`), "containerConfig.layers", "must be an array"},
		{"too many layers", withConfig(`{"layers":[` + strings.Repeat(layerJSON(nil)+",", MaxLayers) + layerJSON(nil) + `]}`), "containerConfig.layers", "at most 32"},
		{"bad gzipDigest", withLayer(map[string]any{"gzipDigest": "sha256:1234"}), "containerConfig.layers[1].gzipDigest", "not a digest"},
		{"uppercase digest", withLayer(map[string]any{"gzipDigest": strings.ToUpper(dGzip)}), "containerConfig.layers[1].gzipDigest", "not a digest"},
		{"sha512 digest", withLayer(map[string]any{"tarDigest": "sha512:" + strings.Repeat("a", 128)}), "containerConfig.layers[1].tarDigest", "not a digest"},
		{"digest not string", withLayer(map[string]any{"tarDigest": 5}), "containerConfig.layers[1].tarDigest", "must be a string"},
		{"zero size", withLayer(map[string]any{"gzipSize": 0}), "containerConfig.layers[1].gzipSize", "positive integer"},
		{"negative size", withLayer(map[string]any{"gzipSize": -1}), "containerConfig.layers[1].gzipSize", "positive integer"},
		{"fractional size", withLayer(map[string]any{"gzipSize": 1.5}), "containerConfig.layers[1].gzipSize", "positive integer"},
		{"huge size", withLayer(map[string]any{"gzipSize": json.Number("1e30")}), "containerConfig.layers[1].gzipSize", "positive integer"},
		{"size as string", withLayer(map[string]any{"gzipSize": "12"}), "containerConfig.layers[1].gzipSize", "must be a number"},
		{"missing location", withLayer(map[string]any{"location": nil}), "containerConfig.layers[1].location", "required"},
		{"missing size", withLayer(map[string]any{"gzipSize": nil}), "containerConfig.layers[1].gzipSize", "required"},
		{"missing tarDigest", withLayer(map[string]any{"tarDigest": nil}), "containerConfig.layers[1].tarDigest", "required"},
		{"ftp location", withLayer(map[string]any{"location": "ftp://h/l.tgz"}), "containerConfig.layers[1].location", `scheme "ftp"`},
		{"remote http", withLayer(map[string]any{"location": "http://layers.example/l.tgz"}), "containerConfig.layers[1].location", "loopback"},
		{"relative file", withLayer(map[string]any{"location": "file://l.tgz"}), "containerConfig.layers[1].location", "absolute path"},
		{"unknown layer field", withLayer(map[string]any{"mediaType": "x"}), "containerConfig.layers[1].mediaType", "unknown field"},
		{"layer null", withConfig(`{"layers":[null]}`), "containerConfig.layers[0]", "not null"},
		{"entrypoint string", withConfig(`{"entrypoint":"/bin/sh"}`), "containerConfig.entrypoint", "array of strings"},
		{"cmd numbers", withConfig(`{"cmd":[1]}`), "containerConfig.cmd[0]", "must be a string"},
		{"cmd null item", withConfig(`{"cmd":["a",null]}`), "containerConfig.cmd[1]", "must be a string"},
		{"cmd NUL", withConfig(`{"cmd":["a\u0000b"]}`), "containerConfig.cmd[0]", "NUL"},
		{"env no equals", withConfig(`{"env":["A=1","JUSTNAME"]}`), "containerConfig.env[1]", "KEY=VALUE"},
		{"env empty key", withConfig(`{"env":["=1"]}`), "containerConfig.env[0]", "KEY=VALUE"},
		{"env space key", withConfig(`{"env":["A B=1"]}`), "containerConfig.env[0]", "white space"},
		{"env reserved", withConfig(`{"env":["TOWERREG_ENTRYPOINT=[\"/bin/evil\"]"]}`), "containerConfig.env[0]", "reserved"},
		{"env user reserved", withConfig(`{"env":["A=1","TOWERREG_USER=0"]}`), "containerConfig.env[1]", "reserved"},
		{"relative workdir", withConfig(`{"workingDir":"work"}`), "containerConfig.workingDir", "absolute path"},
		{"workdir number", withConfig(`{"workingDir":1}`), "containerConfig.workingDir", "must be a string"},
		{"too big", `{"containerImage":"busybox","containerConfig":{"env":["A=` + strings.Repeat("x", MaxRequestBytes) + `"]}}`, "", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest(strings.NewReader(tt.body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeRequest error = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error = %q (field %q), want field %q and a message with %q", err, fe.Field, tt.field, tt.msg)
			}
			if tt.field != "" && !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("message %q does not start with the field", err)
			}
		})
	}
}

func TestNewResponse(t *testing.T) {
	tok := Token("abcdefghijklmnopqrstuvwxyz234567")
	exp := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		ref, want string
	}{
		{"latest", "reg.ngrok.app/wt/" + tok.Secret() + "/nextflow/bash:latest"},
		{"", "reg.ngrok.app/wt/" + tok.Secret() + "/nextflow/bash:latest"},
		{dGzip, "reg.ngrok.app/wt/" + tok.Secret() + "/nextflow/bash:sha256-" + strings.Repeat("ab", 32)},
	}
	for _, tt := range tests {
		r := NewResponse("reg.ngrok.app", tok, Record{Image: Upstream{Registry: "quay.io", Repository: "nextflow/bash", Reference: tt.ref}, Expires: exp})
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"containerToken":%q,"targetImage":%q,"expiration":"2026-03-04T04:06:07Z"}`, tok.Secret(), tt.want)
		if string(b) != want {
			t.Errorf("response for %q =\n%s\nwant\n%s", tt.ref, b, want)
		}
	}
}

// roundTrip checks the decoder's promise: what it accepts re-encodes to
// JSON that it accepts again, as the same value.
func roundTrip(t *testing.T, req Request) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("marshal accepted request: %v", err)
	}
	again, err := DecodeRequest(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("re-encoded request %s refused: %v", b, err)
	}
	if !reflect.DeepEqual(again, req) {
		t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"containerImage":"busybox"}`))
	f.Add([]byte(`{"containerImage":"quay.io/nextflow/bash:latest","containerConfig":{"layers":[` + layerJSON(nil) + `],"entrypoint":["/bin/sh"],"cmd":["-c","x"],"env":["A=1"],"workingDir":"/w"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(bytes.NewReader(b))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			return
		}
		if req.ContainerImage == "" {
			t.Fatal("accepted a request without an image")
		}
		roundTrip(t, req)
	})
}
