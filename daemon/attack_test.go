package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
)

// served is a daemon serving its local and public handlers on loopback.
type served struct {
	local, public string // host:port
}

func servePublic(t *testing.T, cfg config.Config, kc authn.Keychain) served {
	t.Helper()
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), Keychain: kc,
	})
	if err != nil {
		t.Fatal(err)
	}
	local, public := serveDaemon(t, d)
	return served{local: strings.TrimPrefix(local, "http://"), public: strings.TrimPrefix(public, "http://")}
}

// hits counts the requests, and the connections, a server gets.
type hits struct {
	requests, conns atomic.Int64
	ranges          atomic.Int64 // requests that carried a Range header
}

func watched(t *testing.T, h http.Handler) (*httptest.Server, *hits) {
	t.Helper()
	c := &hits{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		if r.Header.Get("Range") != "" {
			c.ranges.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, c
}

func under(hostport string) string { return strings.Replace(hostport, ":", "_", 1) }

// anonGet sends what an anonymous registry client sends after the
// challenge: the anonymous token.
func anonGet(t *testing.T, url string, hdr ...string) (*http.Response, ociErrors) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer anonymous")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e ociErrors
	json.Unmarshal(body, &e)
	e.raw = string(body)
	return resp, e
}

type ociErrors struct {
	Errors []struct{ Code, Message string }
	raw    string
}

func (e ociErrors) first() (code, msg string) {
	if len(e.Errors) == 0 {
		return "", e.raw
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

// TestAnonymousPublicNames plays an internet client with no login against
// the public handler: every name off the public list is a 401 that says
// how to get in, and no upstream, the daemon's own listeners included,
// sees a connection.
func TestAnonymousPublicNames(t *testing.T) {
	up, upHits := watched(t, registry.New(registry.Logger(quiet)))
	priv := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/private/busybox:latest"), priv); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DefaultRegistry = host(up) // the developer's default: still not public
	s := servePublic(t, cfg, fixedKeychain{host(up): &authn.Basic{Username: "dev", Password: "secret"}})
	_, upPort, _ := net.SplitHostPort(host(up))
	upHits.requests.Store(0)
	upHits.conns.Store(0)

	for _, name := range []string{
		under(s.local) + "/" + under(host(up)) + "/private/busybox", // through the local handler (issue 12, item 1)
		"localhost_" + strings.Split(s.local, ":")[1] + "/" + under(host(up)) + "/private/busybox",
		under(host(up)) + "/private/busybox",
		"localhost_" + upPort + "/private/busybox",
		"[::1]_" + upPort + "/private/busybox",
		"0.0.0.0_" + upPort + "/private/busybox",
		"127.1_" + upPort + "/private/busybox",
		"0177.0.0.1_" + upPort + "/private/busybox",
		"2130706433_" + upPort + "/private/busybox", // no dot: a Docker Hub name, on the default registry
		"169.254.169.254/latest/meta-data",
		"private/busybox", // the default registry
		"example.com_22/x",
	} {
		t.Run(name, func(t *testing.T) {
			for _, kind := range []string{"/manifests/latest", "/blobs/sha256:" + strings.Repeat("0", 64), "/tags/list"} {
				resp, e := anonGet(t, "http://"+s.public+"/v2/"+name+kind)
				code, msg := e.first()
				if resp.StatusCode != http.StatusUnauthorized || code != "UNAUTHORIZED" {
					t.Errorf("%s: %d %s %q, want 401 UNAUTHORIZED", kind, resp.StatusCode, code, msg)
					continue
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
					t.Errorf("%s: no challenge", kind)
				}
				if !strings.Contains(msg, "docker login") || !strings.Contains(msg, "container token") {
					t.Errorf("%s: message %q does not say how to get access", kind, msg)
				}
			}
		})
	}
	// "wt" is the container tokens' name space: malformed there, never a
	// repository of the default registry with the developer's login.
	for _, name := range []string{"wt", "wt/x"} {
		resp, e := anonGet(t, "http://"+s.public+"/v2/"+name+"/manifests/latest")
		if code, msg := e.first(); resp.StatusCode != http.StatusNotFound || !strings.Contains(msg, "container token route") {
			t.Errorf("%s: %d %s %q, want 404 naming the token route's form", name, resp.StatusCode, code, msg)
		}
	}
	if n, c := upHits.requests.Load(), upHits.conns.Load(); n != 0 || c != 0 {
		t.Errorf("the upstream saw %d requests on %d connections from anonymous clients", n, c)
	}
}

// TestAnonymousDialPolicy lists loopback registries for anonymous pulls,
// as a developer may, and checks what the dial policy still refuses: the
// daemon's own listener, and a redirect to a loopback address that is not
// on the list. The developer's own pulls follow the same redirect.
func TestAnonymousDialPolicy(t *testing.T) {
	secret := []byte("a file on the developer's machine, not a blob")
	side, sideHits := watched(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(secret) }))
	reg := registry.New(registry.Logger(quiet))
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	ls, _ := img.Layers()
	layer0, _ := ls[0].Digest()
	var redirect atomic.Bool
	up, _ := watched(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirect.Load() && strings.HasSuffix(r.URL.Path, "/blobs/"+layer0.String()) {
			http.Redirect(w, r, side.URL+"/file", http.StatusTemporaryRedirect)
			return
		}
		if strings.Contains(r.URL.Path, "/metadata/") {
			scheme := strings.Split(r.URL.Path, "/")[3] // /v2/metadata/<scheme>/...
			http.Redirect(w, r, scheme+"://169.254.169.254/latest/meta-data/", http.StatusFound)
			return
		}
		if strings.Contains(r.URL.Path, "/missing/") {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "<html>SECRET-PAGE of the far side</html>")
			return
		}
		reg.ServeHTTP(w, r)
	}))
	if err := remote.Write(mustRef(t, host(up)+"/pub/img:latest"), img); err != nil {
		t.Fatal(err)
	}

	// The daemon's own local listener is on the list too: it must still
	// never be dialed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ownLocal := ln.Addr().String()
	ln.Close()
	cfg := config.Default()
	cfg.Listen = ownLocal
	cfg.Public.AnonymousRegistries = []string{host(up), ownLocal}
	d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	local, err := net.Listen("tcp", ownLocal)
	if err != nil {
		t.Fatal(err)
	}
	pubLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(t.Context(), local, pubLn) }()
	t.Cleanup(func() { <-done })
	pub := pubLn.Addr().String()

	// A listed loopback registry serves anonymous pulls.
	if _, err := remote.Image(mustRef(t, pub+"/"+under(host(up))+"/pub/img:latest")); err != nil {
		t.Fatalf("anonymous pull from a listed registry: %v", err)
	}

	t.Run("own listener, even listed", func(t *testing.T) {
		resp, e := anonGet(t, "http://"+pub+"/v2/"+under(ownLocal)+"/"+under(host(up))+"/pub/img/manifests/latest")
		code, msg := e.first()
		if resp.StatusCode != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, "own listener") {
			t.Errorf("%d %s %q, want 403 DENIED: the daemon's own listener", resp.StatusCode, code, msg)
		}
	})

	t.Run("redirect to an unlisted loopback address", func(t *testing.T) {
		redirect.Store(true)
		defer redirect.Store(false)
		resp, e := anonGet(t, "http://"+pub+"/v2/"+under(host(up))+"/pub/img/blobs/"+layer0.String())
		code, msg := e.first()
		if resp.StatusCode != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, "dial policy") {
			t.Errorf("%d %s %q, want 403 DENIED by the dial policy", resp.StatusCode, code, msg)
		}
		if strings.Contains(e.raw, string(secret)) {
			t.Error("the side server's file reached the client")
		}
		if n := sideHits.conns.Load(); n != 0 {
			t.Errorf("the side server got %d connections", n)
		}
		// The developer, on the local handler, follows it (and gets a
		// digest mismatch, since the side server sends no blob).
		resp, e = anonGet(t, "http://"+ownLocal+"/v2/"+under(host(up))+"/pub/img/blobs/"+layer0.String())
		if code, _ := e.first(); sideHits.requests.Load() == 0 || code == "DENIED" {
			t.Errorf("local pull: %d %s, the side server saw %d requests: want the redirect followed", resp.StatusCode, code, sideHits.requests.Load())
		}
		if strings.Contains(e.raw, string(secret)) {
			t.Error("the side server's bytes reached the client unverified")
		}
	})

	t.Run("redirect to the cloud metadata address", func(t *testing.T) {
		for _, tt := range []struct{ scheme, mentions string }{
			{"http", "plain HTTP to 169.254.169.254"},
			{"https", "169.254.169.254, a link-local address"},
		} {
			resp, e := anonGet(t, "http://"+pub+"/v2/"+under(host(up))+"/metadata/"+tt.scheme+"/manifests/latest")
			code, msg := e.first()
			if resp.StatusCode != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, "dial policy") || !strings.Contains(msg, tt.mentions) {
				t.Errorf("%s: %d %s %q, want 403 DENIED by the dial policy: %s", tt.scheme, resp.StatusCode, code, msg, tt.mentions)
			}
		}
	})

	t.Run("no far-side body in errors", func(t *testing.T) {
		resp, e := anonGet(t, "http://"+pub+"/v2/"+under(host(up))+"/missing/img/manifests/latest")
		if resp.StatusCode != http.StatusNotFound || strings.Contains(e.raw, "SECRET-PAGE") {
			t.Errorf("%d %s: want a 404 without the upstream's page", resp.StatusCode, e.raw)
		}
	})
}

// TestRangeNeverUnverified: an upstream that answers a Range request with
// other bytes than the blob's is never asked for a range; the client's
// range is cut from the whole blob, verified against its digest.
func TestRangeNeverUnverified(t *testing.T) {
	reg := registry.New(registry.Logger(quiet))
	lie := []byte("0123456789 not the blob at all")
	up, upHits := watched(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" && strings.Contains(r.URL.Path, "/blobs/") {
			w.Header().Set("Content-Range", "bytes 0-9/999")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(lie[:10])
			return
		}
		reg.ServeHTTP(w, r)
	}))
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Public.AnonymousRegistries = []string{host(up)}
	s := servePublic(t, cfg, authn.NewMultiKeychain())
	ls, _ := img.Layers()
	d0, _ := ls[0].Digest()
	rc, _ := ls[0].Compressed()
	whole, _ := io.ReadAll(rc)
	for _, h := range []string{s.local, s.public} {
		resp, e := anonGet(t, "http://"+h+"/v2/"+under(host(up))+"/test/img/blobs/"+d0.String(), "Range", "bytes=0-9")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal([]byte(e.raw), whole[:10]) {
			t.Errorf("%s: %d %q, want 206 with the blob's first 10 bytes", h, resp.StatusCode, e.raw)
		}
	}
	if n := upHits.ranges.Load(); n != 0 {
		t.Errorf("the upstream was asked %d ranges", n)
	}
}

// TestLoginNamedOnly: a client with the public login pulls with the
// developer's credentials, from the registries the developer named; a
// loopback registry nobody named is the developer's network, not theirs.
// The local handler reaches it.
func TestLoginNamedOnly(t *testing.T) {
	named, unnamed := httptest.NewServer(registry.New(registry.Logger(quiet))), httptest.NewServer(registry.New(registry.Logger(quiet)))
	t.Cleanup(named.Close)
	t.Cleanup(unnamed.Close)
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	for _, up := range []*httptest.Server{named, unnamed} {
		if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Registries = map[string]config.Registry{host(named): {}}
	cfg.Public.Password = "correct-horse-battery"
	s := servePublic(t, cfg, authn.NewMultiKeychain())
	login := remote.WithAuth(&authn.Basic{Username: "towerreg", Password: "correct-horse-battery"})

	if _, err := remote.Image(mustRef(t, s.public+"/"+under(host(named))+"/test/img:latest"), login); err != nil {
		t.Errorf("logged-in pull from a named registry: %v", err)
	}
	_, err := remote.Image(mustRef(t, s.public+"/"+under(host(unnamed))+"/test/img:latest"), login)
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "logged-in clients may not reach") {
		t.Errorf("logged-in pull from an unnamed loopback registry: %v, want DENIED by the dial policy", err)
	}
	if _, err := remote.Image(mustRef(t, s.local+"/"+under(host(unnamed))+"/test/img:latest")); err != nil {
		t.Errorf("local pull from the same registry: %v", err)
	}
}
