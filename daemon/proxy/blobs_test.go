package proxy_test

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
)

// storageUpstream is a registry that answers blob GETs as S3-backed ones
// do: a 307 to a signed URL on a storage server of its own, which counts
// what it serves. The registry itself is ggcr's in-memory one.
type storageUpstream struct {
	*upstream
	storage *httptest.Server
	hits    atomic.Int64 // blob GETs the storage server answered
	// location makes the redirect's URL from the storage server's and
	// the blob's path; nil means storage URL + path + a signature.
	location func(storageURL, path string) string
}

func newStorageUpstream(t *testing.T) *storageUpstream {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s := &storageUpstream{}
	s.storage = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The storage server has the registry's bytes: the real one would
		// have them in its bucket.
		s.hits.Add(1)
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = ""
		reg.ServeHTTP(w, r2)
	}))
	t.Cleanup(s.storage.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") && !strings.Contains(r.URL.Path, "/uploads/") {
			loc := s.storage.URL + r.URL.Path + "?X-Amz-Signature=signed"
			if s.location != nil {
				loc = s.location(s.storage.URL, r.URL.Path)
			}
			http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.upstream = &upstream{t: t, srv: srv}
	return s
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// blobsFor is a blob source over a fresh store, for an audience whose dial
// policy is p.
func blobsFor(t *testing.T, p *dialpolicy.Policy, mode proxy.BlobMode, opts ...proxy.BlobsOption) (*proxy.Blobs, *proxy.Rewriting) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up := proxy.NewUpstream(proxy.Options{Policy: p})
	rw := proxy.NewRewriting(up, st, proxy.StaticLayers{})
	b := proxy.NewBlobs(rw, up, mode, nil, opts...)
	t.Cleanup(b.Wait)
	return b, rw
}

// get serves d's answer to a request, and returns the response.
func get(t *testing.T, b *proxy.Blobs, repo proxy.Repo, d v1.Hash, method, rangeHdr string) (*httptest.ResponseRecorder, *proxy.BlobAnswer, error) {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), method, "/v2/x/blobs/"+d.String(), nil)
	if rangeHdr != "" {
		r.Header.Set("Range", rangeHdr)
	}
	a, err := b.Open(t.Context(), repo, d, method, rangeHdr)
	if err != nil {
		return nil, nil, err
	}
	defer a.Close()
	w := httptest.NewRecorder()
	if err := a.Serve(w, r); err != nil {
		t.Fatalf("serve: %v", err)
	}
	return w, a, nil
}

// TestBlobModes: which answer each audience's mode and policy give a blob
// of an upstream that redirects its blob GETs to storage.
func TestBlobModes(t *testing.T) {
	const blob = "the base layer's bytes"
	for _, tt := range []struct {
		name   string
		mode   proxy.BlobMode
		policy func(u *storageUpstream) *dialpolicy.Policy
		method string
		rng    string
		// location overrides the upstream's redirect URL.
		location func(storageURL, path string) string
		// redirect: the upstream's Location is passed on, and the storage
		// server never asked by the daemon; else the blob is streamed.
		redirect bool
		refused  bool   // the policy's refusal is the answer
		note     string // part of the answer's Note
	}{
		{name: "public redirect passes the Location on", mode: proxy.BlobRedirect, redirect: true,
			policy: func(u *storageUpstream) *dialpolicy.Policy {
				return dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv), hostOf(u.storage)))
			}},
		{name: "a Range GET is redirected too", mode: proxy.BlobRedirect, redirect: true, rng: "bytes=0-3",
			policy: func(u *storageUpstream) *dialpolicy.Policy {
				return dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv), hostOf(u.storage)))
			}},
		{name: "local streams verified", mode: proxy.BlobStream,
			policy: func(*storageUpstream) *dialpolicy.Policy { return dialpolicy.New("local", dialpolicy.AnyHost) }},
		{name: "public stream mode streams", mode: proxy.BlobStream,
			policy: func(u *storageUpstream) *dialpolicy.Policy {
				return dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv), hostOf(u.storage)))
			}},
		{name: "a HEAD is never redirected", mode: proxy.BlobRedirect, method: http.MethodHead,
			policy: func(u *storageUpstream) *dialpolicy.Policy {
				return dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv), hostOf(u.storage)))
			}},
		{name: "a redirect the policy refuses is the policy's refusal", mode: proxy.BlobRedirect, refused: true,
			policy: func(u *storageUpstream) *dialpolicy.Policy {
				return dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv)))
			}},
		{name: "a redirect with credentials in its URL streams", mode: proxy.BlobRedirect, note: "redirect refused",
			location: func(storageURL, path string) string {
				return strings.Replace(storageURL, "http://", "http://user:secret@", 1) + path
			},
			policy: func(u *storageUpstream) *dialpolicy.Policy {
				return dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv), hostOf(u.storage)))
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newStorageUpstream(t)
			u.location = tt.location
			u.pushBlob("test/img", blob)
			d := blobDesc("", blob).Digest
			repo := u.repo("test/img")
			b, rw := blobsFor(t, tt.policy(u), tt.mode)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			u.hits.Store(0) // the push's own requests do not count
			w, a, err := get(t, b, repo, d, method, tt.rng)
			if tt.refused {
				if !errors.Is(err, dialpolicy.ErrRefused) {
					t.Fatalf("error %v, want the dial policy's refusal", err)
				}
				if n := u.hits.Load(); n != 0 {
					t.Errorf("the storage server was asked %d times", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.redirect {
				want := u.storage.URL + "/v2/test/img/blobs/" + d.String() + "?X-Amz-Signature=signed"
				if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != want || a.Source != proxy.SourceRedirect {
					t.Fatalf("%d Location %q from %s (%s), want 307 to %q", w.Code, w.Header().Get("Location"), a.Source, a.Note, want)
				}
				if n := u.hits.Load(); n != 0 {
					t.Errorf("the daemon read the blob: the storage server was asked %d times", n)
				}
				return
			}
			if w.Header().Get("Location") != "" || a.Source != proxy.SourceUpstream {
				t.Fatalf("%d from %s, Location %q: want a stream", w.Code, a.Source, w.Header().Get("Location"))
			}
			if !strings.Contains(a.Note, tt.note) {
				t.Errorf("note %q, want it to say %q", a.Note, tt.note)
			}
			if w.Header().Get("Docker-Content-Digest") != d.String() {
				t.Errorf("Docker-Content-Digest %q", w.Header().Get("Docker-Content-Digest"))
			}
			if method == http.MethodHead {
				if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "22" {
					t.Fatalf("HEAD: %d, %d body bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
				}
				return
			}
			if w.Code != http.StatusOK || w.Body.String() != blob {
				t.Fatalf("%d %q, want the blob", w.Code, w.Body.String())
			}
			b.Wait()
			if !rw.Linked(repo, d) {
				t.Errorf("a streamed blob was not kept in the store")
			}
		})
	}
}

// TestStoredNeverRedirected: what the store holds for a repository (here a
// blob kept from an earlier stream; the injected layers and rewritten
// configs alike) is served from the store, whatever the mode.
func TestStoredNeverRedirected(t *testing.T) {
	const blob = "kept from an earlier pull"
	u := newStorageUpstream(t)
	u.pushBlob("test/img", blob)
	d := blobDesc("", blob).Digest
	repo := u.repo("test/img")
	p := dialpolicy.New("anonymous", dialpolicy.Named(hostOf(u.srv), hostOf(u.storage)))
	stream, rw := blobsFor(t, p, proxy.BlobStream)
	if _, _, err := get(t, stream, repo, d, http.MethodGet, ""); err != nil {
		t.Fatal(err)
	}
	stream.Wait()
	redirect := proxy.NewBlobs(rw, proxy.NewUpstream(proxy.Options{Policy: p}), proxy.BlobRedirect, nil)
	u.hits.Store(0)
	for _, rng := range []string{"", "bytes=3-6"} {
		w, a, err := get(t, redirect, repo, d, http.MethodGet, rng)
		if err != nil {
			t.Fatal(err)
		}
		want := blob
		if rng != "" {
			want = blob[3:7]
		}
		if a.Source != proxy.SourceStore || w.Header().Get("Location") != "" || w.Body.String() != want {
			t.Errorf("range %q: %d from %s, %q: want %q from the store", rng, w.Code, a.Source, w.Body.String(), want)
		}
	}
	if n := u.hits.Load(); n != 0 {
		t.Errorf("the storage server was asked %d times", n)
	}
}

// TestBlobNoRedirect: an upstream that streams is streamed, and the
// answer says why it was not redirected.
func TestBlobNoRedirect(t *testing.T) {
	const blob = "a registry that serves its own blobs"
	up := newUpstream(t)
	up.pushBlob("test/img", blob)
	d := blobDesc("", blob).Digest
	b, _ := blobsFor(t, dialpolicy.New("anonymous", dialpolicy.Named(hostOf(up.srv))), proxy.BlobRedirect)
	w, a, err := get(t, b, up.repo("test/img"), d, http.MethodGet, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Source != proxy.SourceUpstream || w.Body.String() != blob || !strings.Contains(a.Note, "did not redirect") {
		t.Fatalf("%d from %s (%q), %q: want the blob streamed", w.Code, a.Source, a.Note, w.Body.String())
	}
}
