package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// countedRewriting pushes one image, tagged latest, to test/img on a
// counted in-memory upstream whose requests go through hold first, and
// returns a Rewriting over a fresh store in front of it, and that repo.
func countedRewriting(t *testing.T, hold func(w http.ResponseWriter, r *http.Request, next http.Handler)) (*proxy.Rewriting, proxy.Repo, *regtest.Counter) {
	t.Helper()
	reg := regtest.Registry()
	count := regtest.NewCounter(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hold(w, r, reg) }))
	srv := httptest.NewServer(count)
	t.Cleanup(srv.Close)
	regtest.Push(t, regtest.Host(srv), "test/img", "latest", regtest.RandomImage(t, "amd64", types.OCIManifestSchema1, v1.Config{}))
	repo, err := proxy.ParseRepo(regtest.Host(srv)+"/test/img", "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	rw, _ := newRewriting(t)
	return rw, repo, count
}

func pass(w http.ResponseWriter, r *http.Request, next http.Handler) { next.ServeHTTP(w, r) }

// TestSharedWorkOutlivesFirstClient: the ping and token exchange for a
// repository, and the rewrite of an image, are shared by every request
// waiting on them, so a first client that gives up must not fail the
// others. (Moved down from daemon/, where the clients were HTTP requests
// through daemon.New: the same two assertions, on Rewriting.Get.)
func TestSharedWorkOutlivesFirstClient(t *testing.T) {
	tests := []struct {
		name string
		hold func(r *http.Request) bool // the upstream request to hold
	}{
		{"dial", func(r *http.Request) bool { return r.URL.Path == "/v2/" }},
		{"rewrite", func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var gate atomic.Bool
			rw, repo, _ := countedRewriting(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if gate.Load() && tt.hold(r) {
					<-release
				}
				next.ServeHTTP(w, r)
			})
			gate.Store(true)
			latest := proxy.Ref{Tag: "latest"}

			first, cancel := context.WithCancel(t.Context())
			firstDone := make(chan error, 1)
			go func() {
				_, err := rw.Get(first, repo, latest)
				firstDone <- err
			}()
			secondDone := make(chan error, 1)
			go func() {
				time.Sleep(50 * time.Millisecond) // let the first client start the work
				_, err := rw.Get(t.Context(), repo, latest)
				secondDone <- err
			}()
			time.Sleep(150 * time.Millisecond)
			cancel()
			if err := <-firstDone; err == nil {
				t.Error("the first client was not cancelled")
			}
			close(release)
			if err := <-secondDone; err != nil {
				t.Fatalf("second client: %v after the first gave up, want its manifest", err)
			}
		})
	}
}

// TestWarmPullIsOneHead: a second pull of a tag whose upstream digest did
// not move is answered from the store after one upstream HEAD, with the
// same rewritten digest. (Moved down from daemon/'s TestCacheAndRestart,
// whose restart half stays there: the same counts, on Rewriting.Get.)
func TestWarmPullIsOneHead(t *testing.T) {
	rw, repo, count := countedRewriting(t, pass)
	latest := proxy.Ref{Tag: "latest"}
	s1, err := rw.Get(t.Context(), repo, latest)
	if err != nil {
		t.Fatal(err)
	}
	count.Reset()
	s2, err := rw.Get(t.Context(), repo, latest)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Digest != s2.Digest {
		t.Fatalf("same upstream, same layer: digest %s then %s", s1.Digest, s2.Digest)
	}
	if got := count.Get("GET manifest") + count.Get("GET blob"); got != 0 {
		t.Fatalf("a warm pull by tag made %d upstream GETs, want only a HEAD", got)
	}
	if got := count.Get("HEAD manifest"); got != 1 {
		t.Fatalf("a warm pull by tag made %d upstream HEADs, want 1", got)
	}
	if !s2.Cached {
		t.Error("the warm pull's answer is not marked as from the store")
	}
}
