package daemon_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// unpagedTags is an upstream like distribution 2.8: tags/list ignores n
// and last, and lists the tags in storage order.
func unpagedTags(tags ...string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /v2/test/img/tags/list", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": "test/img", "tags": tags})
	})
	return mux
}

// TestTagsListPages: the daemon's tags/list is in lexical order and
// honours n and last as the distribution spec says (the OCI conformance
// suite checks last), over an upstream that ignores them and over one
// that pages already (ggcr's, whose paging the daemon's must not
// disturb).
func TestTagsListPages(t *testing.T) {
	tags := []string{"v3", "a", "v1", "B", "v2"} // byte order: B a v1 v2 v3
	ggcr := newEnv(t, registry.New(registry.Logger(quiet)))
	for _, tag := range tags {
		ggcr.push(t, "test/img", tag, randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	}
	upstreams := map[string]*env{"unpaged": newEnv(t, unpagedTags(tags...)), "ggcr": ggcr}

	for _, tt := range []struct {
		query string
		want  []string
		next  string // the Link's query, "" for none
	}{
		{"", []string{"B", "a", "v1", "v2", "v3"}, ""},
		{"?n=2", []string{"B", "a"}, "last=a&n=2"},
		{"?n=2&last=a", []string{"v1", "v2"}, "last=v2&n=2"},
		{"?n=2&last=v2", []string{"v3"}, ""},
		{"?last=a", []string{"v1", "v2", "v3"}, ""},
		{"?last=b", []string{"v1", "v2", "v3"}, ""}, // last need not be a tag
		{"?last=zzz", []string{}, ""},
		{"?n=5", []string{"B", "a", "v1", "v2", "v3"}, ""},
		{"?n=0", []string{}, ""},
	} {
		for up, e := range upstreams {
			t.Run(up+tt.query, func(t *testing.T) {
				name := pathHost(e.upstream) + "/test/img"
				resp, err := http.Get(e.proxy.URL + "/v2/" + name + "/tags/list" + tt.query)
				if err != nil {
					t.Fatal(err)
				}
				list := regtest.DecodeTags(t, resp.Body)
				if resp.StatusCode != http.StatusOK || list.Name != name || list.Tags == nil || !slices.Equal(list.Tags, tt.want) {
					t.Errorf("%d %+v, want name %q and tags %q", resp.StatusCode, list, name, tt.want)
				}
				want := ""
				// ggcr cuts at n and sends no Link: the daemon cannot
				// know that more follow.
				if tt.next != "" && up == "unpaged" {
					want = "</v2/" + name + "/tags/list?" + tt.next + `>; rel="next"`
				}
				if got := resp.Header.Get("Link"); got != want {
					t.Errorf("Link %q, want %q", got, want)
				}
			})
		}
	}
}
