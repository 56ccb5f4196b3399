package api_test

// Paged referrers lists through the registry handler over the real proxy:
// moved down from daemon/, where they went through daemon.New.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/internal/regtest"
)

// pager answers the referrers API of the registry it wraps one descriptor
// a page, in digest order, as registries with long lists do, each page
// pointing at the next with a Link header that link(n) spells; an endless
// pager points further past the last one too.
type pager struct {
	next    http.Handler
	link    func(r *http.Request, n int) string
	endless bool
	pages   atomic.Int32
}

func (p *pager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Path, "/referrers/") {
		p.next.ServeHTTP(w, r)
		return
	}
	p.pages.Add(1)
	rec := httptest.NewRecorder()
	bare := r.Clone(r.Context())
	bare.URL.RawQuery = ""
	p.next.ServeHTTP(rec, bare)
	var top map[string]json.RawMessage
	var entries []json.RawMessage
	if json.Unmarshal(rec.Body.Bytes(), &top) != nil || json.Unmarshal(top["manifests"], &entries) != nil {
		http.Error(w, "not an index", http.StatusInternalServerError)
		return
	}
	slices.SortFunc(entries, func(a, b json.RawMessage) int { return bytes.Compare(a, b) })
	n, _ := strconv.Atoi(r.URL.Query().Get("last"))
	var page []json.RawMessage
	if n < len(entries) {
		page = entries[n : n+1]
	}
	top["manifests"], _ = json.Marshal(page)
	if n+1 < len(entries) || p.endless {
		w.Header().Set("Link", p.link(r, n+1))
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	json.NewEncoder(w).Encode(top)
}

// TestReferrersPages: a referrers list the upstream pages is answered
// whole, for upstream and rewritten digests alike; a Link to another host
// is never followed, and a list that never ends is cut off.
func TestReferrersPages(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the proxy followed a Link to another host: %s", r.URL)
	}))
	defer elsewhere.Close()
	relative := func(r *http.Request, n int) string {
		return fmt.Sprintf(`<%s?n=1&last=%d>; rel="next"`, r.URL.Path, n)
	}
	tests := []struct {
		name   string
		link   func(r *http.Request, n int) string
		status int
		max    int32 // pages the upstream may be asked for, at most
	}{
		{"relative links", relative, http.StatusOK, 4},
		{"absolute link, unquoted rel, other params", func(r *http.Request, n int) string {
			return fmt.Sprintf(`<http://%s%s?last=%d>; type="x";rel=next`, r.Host, r.URL.Path, n)
		}, http.StatusOK, 4},
		{"link to another host", func(r *http.Request, n int) string {
			return fmt.Sprintf(`<%s%s?last=%d>; rel="next"`, elsewhere.URL, r.URL.Path, n)
		}, http.StatusBadGateway, 2},
		{"never ends", nil, http.StatusBadGateway, 65},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pager{next: regtest.Registry(registry.WithReferrersSupport(true)), link: tt.link}
			if p.endless = tt.link == nil; p.endless {
				p.link = relative
			}
			e := newStack(t, p)
			f := regtest.PushReferrers(t, regtest.Host(e.upstream))
			img := regtest.HeadDigest(t, e.through("test/ref")+":img")
			p.pages.Store(0)
			for _, d := range []v1.Hash{f.Image, img} {
				url := e.proxy.URL + "/v2/" + regtest.PathHost(e.upstream) + "/test/ref/referrers/" + d.String()
				resp, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Fatalf("GET referrers of %s: %d %s, want %d", d, resp.StatusCode, body, tt.status)
				}
				if tt.status != http.StatusOK {
					continue
				}
				var im v1.IndexManifest
				if err := json.Unmarshal(body, &im); err != nil {
					t.Fatal(err)
				}
				var got []v1.Hash
				for _, m := range im.Manifests {
					got = append(got, m.Digest)
				}
				if want := regtest.Sorted(f.Sig, f.Sbom); fmt.Sprint(regtest.Sorted(got...)) != fmt.Sprint(want) {
					t.Errorf("referrers of %s: %v, want both pages: %v", d, got, want)
				}
				if resp.Header.Get("Link") != "" {
					t.Errorf("the answer carries a Link (%q): the list is whole", resp.Header.Get("Link"))
				}
			}
			if n := p.pages.Load(); n > 2*tt.max {
				t.Errorf("the upstream was asked for %d pages, at most %d each", n, tt.max)
			}
		})
	}
}
