// Package regtest is what the registry tests of daemon/, daemon/api and
// daemon/proxy share: an in-memory upstream that counts what it is asked,
// random images to push to it, the test layer, and the check that a pulled
// image is its base with that layer appended. Tests only import it.
package regtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/layer"
)

// Registry is ggcr's in-memory registry with opts, without its request
// log.
func Registry(opts ...registry.Option) http.Handler {
	return registry.New(append([]registry.Option{registry.Logger(log.New(io.Discard, "", 0))}, opts...)...)
}

// Layer is a small layer directory: a common file, and an "entry" for
// amd64 and arm64 only, as the default layer has.
func Layer() fstest.MapFS {
	return fstest.MapFS{
		"foo.txt":                                {Data: []byte("hello from the test layer\n"), Mode: 0o644},
		".platforms/linux_amd64/.towerreg/entry": {Data: []byte("#!amd64 entry\n"), Mode: 0o755},
		".platforms/linux_arm64/.towerreg/entry": {Data: []byte("#!arm64 entry\n"), Mode: 0o755},
	}
}

// Counter wraps an upstream and counts requests by method and kind:
// "GET manifest", "HEAD blob", "GET other".
type Counter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
}

// NewCounter counts the requests next answers.
func NewCounter(next http.Handler) *Counter { return &Counter{next: next, n: map[string]int{}} }

func (c *Counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := r.Method + " other"
	switch {
	case strings.Contains(r.URL.Path, "/manifests/"):
		k = r.Method + " manifest"
	case strings.Contains(r.URL.Path, "/blobs/"):
		k = r.Method + " blob"
	}
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

// Get is the count of k since the last Reset.
func (c *Counter) Get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// Reset sets every count to zero.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

// Host of a test server, as it goes into image names.
func Host(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// PathHost is the server's host as it goes into a path: Docker's grammar
// has no ':' there, so the port is spelled with '_'.
func PathHost(s *httptest.Server) string { return strings.Replace(Host(s), ":", "_", 1) }

// MustRef parses s.
func MustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Push writes img to the registry at host under repo:tag and returns its
// digest.
func Push(t testing.TB, host, repo, tag string, img remote.Taggable) v1.Hash {
	t.Helper()
	ref := MustRef(t, host+"/"+repo+":"+tag)
	var err error
	switch x := img.(type) {
	case v1.Image:
		err = remote.Write(ref, x)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// RandomImage is a random linux image of arch, as mt, with cfg.
func RandomImage(t testing.TB, arch string, mt types.MediaType, cfg v1.Config) v1.Image {
	t.Helper()
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, mt)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if mt == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// CheckInjected checks that got is base with l appended and the entry
// chain set up.
func CheckInjected(t *testing.T, l layer.Built, base, got v1.Image) {
	t.Helper()
	bl, _ := base.Layers()
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(gl) != len(bl)+1 {
		t.Fatalf("%d layers, want %d", len(gl), len(bl)+1)
	}
	for i := range bl {
		bd, _ := bl[i].Digest()
		gd, _ := gl[i].Digest()
		if bd != gd {
			t.Fatalf("base layer %d changed: %s -> %s", i, bd, gd)
		}
	}
	last, _ := gl[len(gl)-1].Digest()
	if last != l.GzipDigest {
		t.Fatalf("last layer %s, want the injected %s", last, l.GzipDigest)
	}
	bc, _ := base.ConfigFile()
	gc, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !l.HasEntry {
		if !slices.Equal(gc.Config.Entrypoint, bc.Config.Entrypoint) || !slices.Equal(gc.Config.Env, bc.Config.Env) {
			t.Fatalf("a layer without an entry changed the entrypoint or env: %+v -> %+v", bc.Config, gc.Config)
		}
		return
	}
	if want := []string{layer.EntryPath}; !slices.Equal(gc.Config.Entrypoint, want) {
		t.Fatalf("entrypoint %q, want %q", gc.Config.Entrypoint, want)
	}
	if !slices.Equal(gc.Config.Cmd, bc.Config.Cmd) || gc.Config.WorkingDir != bc.Config.WorkingDir {
		t.Fatalf("cmd/workdir changed: %+v -> %+v", bc.Config, gc.Config)
	}
	orig, _ := json.Marshal(bc.Config.Entrypoint)
	if bc.Config.Entrypoint == nil {
		orig = []byte("[]")
	}
	wantEnv := []string{layer.EntrypointEnv + "=" + string(orig)}
	wantUser := bc.Config.User
	if bc.Config.User != "" {
		// The container starts as root to mount; the entry switches back.
		wantEnv = append(wantEnv, layer.UserEnv+"="+bc.Config.User)
		wantUser = layer.RootUser
	}
	if gc.Config.User != wantUser {
		t.Fatalf("user %q, want %q", gc.Config.User, wantUser)
	}
	if n, w := len(gc.Config.Env), len(wantEnv); n < w || !slices.Equal(gc.Config.Env[n-w:], wantEnv) {
		t.Fatalf("env %q, want it to end with %q", gc.Config.Env, wantEnv)
	}
}

// LoginKeychain is anonymous until Login, as a keychain is before and
// after a `docker login`.
type LoginKeychain struct{ kc atomic.Pointer[FixedKeychain] }

// Login has the keychain resolve through kc from now on.
func (k *LoginKeychain) Login(kc FixedKeychain) { k.kc.Store(&kc) }

// Resolve implements authn.Keychain.
func (k *LoginKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if kc := k.kc.Load(); kc != nil {
		return kc.Resolve(r)
	}
	return authn.Anonymous, nil
}

// FixedKeychain maps registry hosts to their credentials; any other is
// anonymous.
type FixedKeychain map[string]authn.Authenticator

// Resolve implements authn.Keychain.
func (k FixedKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// AuthRegistry is an in-memory registry that takes only user:pass, by
// Basic auth (scheme "Basic") or by a Bearer token from its own realm
// (scheme "Bearer").
func AuthRegistry(t *testing.T, scheme, user, pass string) *httptest.Server {
	t.Helper()
	reg := Registry()
	var h http.Handler = &BearerGate{User: user, Pass: pass, Token: "tok", Next: reg}
	if scheme == "Basic" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); ok && u == user && p == pass {
				reg.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// BearerGate is a registry's Bearer auth, as Docker Hub's is: its realm,
// /token, gives Token for User:Pass (Basic auth), and only the requests
// that carry that token pass on to Next; the others get a 401 whose
// challenge names the realm on the host they asked.
type BearerGate struct {
	User, Pass, Token string
	Next              http.Handler
	// Tokens counts the tokens given.
	Tokens atomic.Int32
}

func (g *BearerGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		if u, p, ok := r.BasicAuth(); !ok || u != g.User || p != g.Pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		g.Tokens.Add(1)
		fmt.Fprintf(w, `{"token":%q}`, g.Token)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+g.Token {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, r.Host))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	g.Next.ServeHTTP(w, r)
}

// TagList is a tags/list answer.
type TagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// DecodeTags reads a tags/list answer's body, and closes it.
func DecodeTags(t testing.TB, body io.ReadCloser) TagList {
	t.Helper()
	defer body.Close()
	var list TagList
	if err := json.NewDecoder(body).Decode(&list); err != nil {
		t.Fatalf("tags/list answer: %v", err)
	}
	return list
}

// PutManifest writes v, as JSON, to the registry at baseURL as a manifest
// of repo under ref ("" for its digest), and returns its descriptor.
func PutManifest(t testing.TB, baseURL, repo, ref string, mt types.MediaType, v any) v1.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d, _, _ := v1.SHA256(bytes.NewReader(b))
	if ref == "" {
		ref = d.String()
	}
	req, _ := http.NewRequest(http.MethodPut, baseURL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(b))
	req.Header.Set("Content-Type", string(mt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s:%s: %s", repo, ref, resp.Status)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}
