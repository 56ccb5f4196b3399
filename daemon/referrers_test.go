package daemon_test

// The referrers of an image through a container token; the referrers API
// itself is tested in daemon/api.

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

// TestTokenReferrers: a container token answers for its own image only.
func TestTokenReferrers(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet), registry.WithReferrersSupport(true)))
	f := regtest.PushReferrers(t, host(e.upstream))
	route := issueLocal(t, host(e.proxy), host(e.upstream)+"/test/ref:img")
	mine := regtest.HeadDigest(t, e.through("test/ref")+":img")
	tests := []struct {
		name    string
		subject v1.Hash
		status  int
	}{
		{"its image", mine, http.StatusOK},
		{"its upstream digest", f.Image, http.StatusOK},
		{"another image of the repository", f.Index, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(e.proxy.URL + "/v2/" + route + "/referrers/" + tt.subject.String())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == http.StatusOK && !bytes.Contains(body, []byte(f.Sig.String())) {
				t.Errorf("the image's signature is not listed: %s", body)
			}
		})
	}
}
