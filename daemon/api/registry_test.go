package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// client is the address httptest gives every request it makes.
const client = "192.0.2.1:1234"

// TestRegistryRoutes drives the registry handler over a fake proxy: which
// route each request takes, its status, headers and OCI error body, HEAD
// against GET, and the events published. A request the handler refuses
// must not reach the proxy.
func TestRegistryRoutes(t *testing.T) {
	cfg := digestOf(t, "{}")
	img := imageManifest(t, types.OCIManifestSchema1, cfg)
	upstream := digestOf(t, "the upstream manifest")
	served := proxy.Served{Manifest: img, Upstream: upstream, Platforms: []string{"linux/amd64"}}
	manifestOK := func(proxy.Repo, proxy.Ref) (proxy.Served, error) { return served, nil }
	manifestErr := func(err error) func(proxy.Repo, proxy.Ref) (proxy.Served, error) {
		return func(proxy.Repo, proxy.Ref) (proxy.Served, error) { return proxy.Served{}, err }
	}
	blobD := digestOf(t, "a blob")
	redirect := func(_ proxy.Repo, _ v1.Hash, _ string) (*proxy.BlobAnswer, error) {
		return &proxy.BlobAnswer{Source: proxy.SourceRedirect, Size: 6, Location: "https://storage.example/blob?sig=1"}, nil
	}
	const repo = "reg.example/test/img"
	manifestEvent := func(method, ref string, status int, errText string) event.ManifestServed {
		return event.ManifestServed{Client: client, Method: method, Repo: repo, Reference: ref, Status: status, Err: errText}
	}
	okEvent := func(method string) event.ManifestServed {
		ev := event.ManifestServed{Client: client, Method: method, Repo: repo, Reference: "latest", Upstream: upstream.String(),
			Digest: img.Digest.String(), MediaType: string(img.MediaType), Platforms: served.Platforms, Status: 200}
		if method == http.MethodGet { // a HEAD names no blobs to come
			ev.Config = cfg.String()
		}
		return ev
	}
	blobEvent := func(method string, status int, bytes int64) event.BlobServed {
		return event.BlobServed{Client: client, Method: method, Repo: repo, Digest: blobD.String(), Source: proxy.SourceRedirect,
			Face: "local", Size: 6, Status: status, Bytes: bytes}
	}
	tests := []struct {
		name         string
		method, path string
		fake         *fakeProxy // nil: a proxy that must not be called
		status       int
		code         string            // the OCI error's, "" for none
		body         *string           // exact body, when set
		header       map[string]string // headers the answer must carry
		calls        []string          // what reached the proxy
		events       []event.Event
	}{
		{name: "base GET", method: "GET", path: "/v2/", status: 200, body: ptr("{}"),
			header: map[string]string{"Content-Type": "application/json", "Docker-Distribution-API-Version": "registry/2.0"}},
		{name: "base HEAD", method: "HEAD", path: "/v2", status: 200, body: ptr(""), header: map[string]string{"Content-Length": "2"}},
		{name: "PUT manifest", method: "PUT", path: "/v2/" + repo + "/manifests/latest", status: 405, code: "UNSUPPORTED"},
		{name: "DELETE manifest", method: "DELETE", path: "/v2/" + repo + "/manifests/latest", status: 405, code: "UNSUPPORTED"},
		{name: "POST upload", method: "POST", path: "/v2/" + repo + "/blobs/uploads/", status: 405, code: "UNSUPPORTED"},
		{name: "no such route", method: "GET", path: "/v2/" + repo + "/blobs/uploads/", status: 404, code: "UNSUPPORTED"},
		{name: "dot-dot name", method: "GET", path: "/v2/reg.example/../x/manifests/latest", status: 400, code: "NAME_INVALID",
			events: []event.Event{event.ManifestServed{Client: client, Method: "GET", Repo: "reg.example/../x", Reference: "latest", Status: 400,
				Err: errText(proxy.ParseRepo("reg.example/../x", "docker.io"))}}},
		{name: "upper-case name", method: "GET", path: "/v2/reg.example/Test/img/manifests/latest", status: 400, code: "NAME_INVALID"},
		{name: "name too long", method: "GET", path: "/v2/reg.example/" + strings.Repeat("a", 300) + "/manifests/latest", status: 400, code: "NAME_INVALID"},
		{name: "bad tag", method: "GET", path: "/v2/" + repo + "/manifests/-bad", status: 400, code: "NAME_INVALID",
			events: []event.Event{manifestEvent("GET", "-bad", 400, errText(proxy.ParseRef("-bad")))}},
		{name: "bad manifest digest", method: "GET", path: "/v2/" + repo + "/manifests/sha256:zz", status: 400, code: "DIGEST_INVALID"},
		{name: "bad blob digest", method: "GET", path: "/v2/" + repo + "/blobs/sha256:zz", status: 400, code: "DIGEST_INVALID"},
		{name: "bad referrers digest", method: "GET", path: "/v2/" + repo + "/referrers/sha256:zz", status: 400, code: "DIGEST_INVALID"},

		{name: "manifest GET", method: "GET", path: "/v2/" + repo + "/manifests/latest", fake: &fakeProxy{manifest: manifestOK},
			status: 200, body: ptr(string(img.Bytes)), calls: []string{"Get " + repo},
			header: map[string]string{"Content-Type": string(img.MediaType), "Docker-Content-Digest": img.Digest.String(),
				"Content-Length": strconv.Itoa(len(img.Bytes)), "Etag": `"` + img.Digest.String() + `"`},
			events: []event.Event{okEvent("GET")}},
		{name: "manifest HEAD", method: "HEAD", path: "/v2/" + repo + "/manifests/latest", fake: &fakeProxy{manifest: manifestOK},
			status: 200, body: ptr(""), calls: []string{"Get " + repo},
			header: map[string]string{"Docker-Content-Digest": img.Digest.String(), "Content-Length": strconv.Itoa(len(img.Bytes))},
			events: []event.Event{okEvent("HEAD")}},
		{name: "short name on the default registry", method: "GET", path: "/v2/busybox/manifests/latest", fake: &fakeProxy{manifest: manifestOK},
			status: 200, calls: []string{"Get index.docker.io/library/busybox"}},
		{name: "pull by upstream digest", method: "GET", path: "/v2/" + repo + "/manifests/latest",
			fake:   &fakeProxy{manifest: manifestErr(&proxy.UpstreamDigestError{Digest: upstream})},
			status: 404, code: "MANIFEST_UNKNOWN", calls: []string{"Get " + repo}},
		{name: "upstream unreachable", method: "GET", path: "/v2/" + repo + "/manifests/latest",
			fake:   &fakeProxy{manifest: manifestErr(fmt.Errorf("dial: %w", proxy.ErrUnavailable))},
			status: 503, code: "UNAVAILABLE", calls: []string{"Get " + repo},
			events: []event.Event{manifestEvent("GET", "latest", 503, "dial: "+proxy.ErrUnavailable.Error())}},
		{name: "upstream timeout", method: "HEAD", path: "/v2/" + repo + "/manifests/latest",
			fake:   &fakeProxy{manifest: manifestErr(proxy.ErrTimeout)},
			status: 504, calls: []string{"Get " + repo}, body: ptr("")},

		{name: "blob GET redirected", method: "GET", path: "/v2/" + repo + "/blobs/" + blobD.String(), fake: &fakeProxy{blob: redirect},
			status: 307, calls: []string{"Open " + repo}, header: map[string]string{"Location": "https://storage.example/blob?sig=1"},
			events: []event.Event{
				event.BlobStarted{Client: client, Repo: repo, Digest: blobD.String(), Source: proxy.SourceRedirect, Size: 6},
				blobEvent("GET", 307, 0)}},
		{name: "blob HEAD starts no transfer", method: "HEAD", path: "/v2/" + repo + "/blobs/" + blobD.String(), fake: &fakeProxy{blob: redirect},
			status: 307, calls: []string{"Open " + repo}, events: []event.Event{blobEvent("HEAD", 307, 0)}},
		{name: "blob not matching its digest", method: "GET", path: "/v2/" + repo + "/blobs/" + blobD.String(),
			fake:   &fakeProxy{blob: func(proxy.Repo, v1.Hash, string) (*proxy.BlobAnswer, error) { return nil, proxy.ErrDigestMismatch }},
			status: 502, code: "UNKNOWN", calls: []string{"Open " + repo},
			events: []event.Event{event.BlobServed{Client: client, Method: "GET", Repo: repo, Digest: blobD.String(),
				Source: proxy.SourceUpstream, Face: "local", Size: -1, Status: 502, Bytes: bodyLen, Err: proxy.ErrDigestMismatch.Error()}}},

		{name: "tags GET", method: "GET", path: "/v2/reg.example/test/img/tags/list?n=1",
			fake: &fakeProxy{tags: func(proxy.Repo, string) (*http.Response, error) {
				return jsonAnswer(`{"name":"test/img","tags":["v1"]}`, http.Header{"Link": {`</v2/test/img/tags/list?last=v1&n=1>; rel="next"`}}), nil
			}},
			status: 200, body: ptr(`{"name":"reg.example/test/img","tags":["v1"]}`), calls: []string{"Tags " + repo},
			header: map[string]string{"Link": `</v2/reg.example/test/img/tags/list?last=v1&n=1>; rel="next"`}},
		{name: "tags HEAD, none upstream", method: "HEAD", path: "/v2/reg.example/test/img/tags/list",
			fake:   &fakeProxy{tags: func(proxy.Repo, string) (*http.Response, error) { return jsonAnswer(`{"name":"test/img"}`, nil), nil }},
			status: 200, body: ptr(""), calls: []string{"Tags " + repo},
			header: map[string]string{"Content-Length": strconv.Itoa(len(`{"name":"reg.example/test/img","tags":[]}`))}},
		{name: "referrers filtered", method: "GET", path: "/v2/" + repo + "/referrers/" + blobD.String() + "?artifactType=x",
			fake: &fakeProxy{referrers: func(_ proxy.Repo, _ v1.Hash, at string) (proxy.Referrers, error) {
				return proxy.Referrers{Bytes: []byte(`{"artifactType":"` + at + `"}`), Filtered: true}, nil
			}},
			status: 200, body: ptr(`{"artifactType":"x"}`), calls: []string{"Referrers " + repo},
			header: map[string]string{"Content-Type": string(proxy.ReferrersMediaType), "OCI-Filters-Applied": "artifactType"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake
			if f == nil {
				f = &fakeProxy{}
			}
			got := serveFake(t, f, tt.method, tt.path)
			if got.Code != tt.status {
				t.Fatalf("status %d (%s), want %d", got.Code, got.Body, tt.status)
			}
			if tt.code != "" {
				checkOCIError(t, got, tt.code)
			}
			if tt.body != nil && got.Body.String() != *tt.body {
				t.Errorf("body %q, want %q", got.Body, *tt.body)
			}
			for k, v := range tt.header {
				if h := got.Header().Get(k); h != v {
					t.Errorf("%s: %q, want %q", k, h, v)
				}
			}
			if !reflect.DeepEqual(f.calls, tt.calls) {
				t.Errorf("proxy calls %q, want %q", f.calls, tt.calls)
			}
			if tt.events != nil && !reflect.DeepEqual(got.events, withBodyLen(tt.events, got.Body.Len())) {
				t.Errorf("events\n%+v\nwant\n%+v", got.events, tt.events)
			}
		})
	}
}

// checkOCIError checks that a is an OCI error whose first code is code.
func checkOCIError(t *testing.T, a answer, code string) {
	t.Helper()
	if ct := a.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(a.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is no OCI error JSON: %v", a.Body, err)
	}
	if len(body.Errors) == 0 || body.Errors[0].Code != code || body.Errors[0].Message == "" {
		t.Fatalf("errors %+v, want code %s with a message", body.Errors, code)
	}
}

func ptr(s string) *string { return &s }

// errText is the text of a parse's error, as an event carries it.
func errText[T any](_ T, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// bodyLen, as an event's Bytes, stands for the answer's whole body: an
// error's JSON, which the test does not spell out.
const bodyLen = -2

func withBodyLen(evs []event.Event, n int) []event.Event {
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		if b, ok := e.(event.BlobServed); ok && b.Bytes == bodyLen {
			b.Bytes = int64(n)
			e = b
		}
		out[i] = e
	}
	return out
}
