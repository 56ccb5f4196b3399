package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// TestUpstreamTags: Upstream.Tags asks the upstream's tags/list with the
// client's pagination query as it is, and hands back its answer.
func TestUpstreamTags(t *testing.T) {
	srv := httptest.NewServer(regtest.Registry())
	t.Cleanup(srv.Close)
	for _, tag := range []string{"v1", "v2", "v3"} {
		regtest.Push(t, regtest.Host(srv), "test/img", tag, regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{}))
	}
	repo, err := proxy.ParseRepo(regtest.Host(srv)+"/test/img", "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	up := proxy.NewUpstream(proxy.Options{Transport: http.DefaultTransport})
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"v1", "v2", "v3"}},
		{"n=2", []string{"v1", "v2"}},
		{"n=2&last=v2", []string{"v3"}},
	}
	for _, tt := range tests {
		t.Run("?"+tt.query, func(t *testing.T) {
			resp, err := up.Tags(t.Context(), repo, tt.query)
			if err != nil {
				t.Fatal(err)
			}
			list := regtest.DecodeTags(t, resp.Body)
			if list.Name != "test/img" || !slices.Equal(list.Tags, tt.want) {
				t.Fatalf("tags/list?%s: %+v, want test/img %v", tt.query, list, tt.want)
			}
		})
	}
	missing, err := proxy.ParseRepo(regtest.Host(srv)+"/test/nope", "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := up.Tags(t.Context(), missing, ""); err == nil {
		resp.Body.Close()
		t.Fatalf("tags of a repository the upstream does not have: %s, want an error", resp.Status)
	}
}
