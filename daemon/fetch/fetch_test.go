package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"go.uber.org/goleak"

	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLayer packs a small tree with the real packer, so every expected
// digest below is computed, never written down.
func testLayer(t *testing.T, withEntry bool) ([]byte, layer.Built) {
	t.Helper()
	tree := fstest.MapFS{
		"etc/hello.txt": {Data: []byte("hello from a token layer\n"), Mode: 0o644},
		"data/big.bin":  {Data: bytes.Repeat([]byte("0123456789abcdef"), 8192), Mode: 0o644},
	}
	if withEntry {
		tree[".towerreg/entry"] = &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o755}
	}
	var buf bytes.Buffer
	b, err := layer.Pack(context.Background(), tree, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), b
}

func hashOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func spec(loc string, b layer.Built) Layer {
	return Layer{Location: loc, GzipDigest: b.GzipDigest, GzipSize: b.GzipSize, TarDigest: b.TarDigest}
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertNothingStored checks that a failed fetch left neither the blob nor a
// temporary file behind.
func assertNothingStored(t *testing.T, s *store.Store, h v1.Hash) {
	t.Helper()
	if _, err := s.Stat(h); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("blob %s is in the store after a failed fetch (err %v)", h, err)
	}
	for _, d := range []string{"blobs/sha256", "tmp"} {
		ents, err := os.ReadDir(filepath.Join(s.Root(), d))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 0 {
			t.Errorf("%s holds %d files after a failed fetch", d, len(ents))
		}
	}
}

func assertStored(t *testing.T, s *store.Store, want []byte) {
	t.Helper()
	got, err := s.ReadBlob(hashOf(want))
	if err != nil {
		t.Fatalf("blob not stored: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stored blob differs from the layer")
	}
}

func serveBytes(t *testing.T, body []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFetchGood(t *testing.T) {
	plain, plainBuilt := testLayer(t, false)
	entry, entryBuilt := testLayer(t, true)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(plain) }))
	t.Cleanup(tlsSrv.Close)
	// A server that labels the .tar.gz as gzip content-encoding, as some
	// object stores do: the bytes must still be taken as they are.
	encSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(plain)
	}))
	t.Cleanup(encSrv.Close)
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(plain[:100])
		w.(http.Flusher).Flush() // no Content-Length from here on
		w.Write(plain[100:])
	}))
	t.Cleanup(chunked.Close)
	target := serveBytes(t, plain)
	redir := httptest.NewServer(http.RedirectHandler(target.URL+"/layer.tar.gz", http.StatusFound))
	t.Cleanup(redir.Close)
	// https on loopback may send the client to plain http on loopback.
	tlsRedir := httptest.NewTLSServer(http.RedirectHandler(target.URL+"/x", http.StatusMovedPermanently))
	t.Cleanup(tlsRedir.Close)

	pool := tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	pool2 := tlsRedir.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	localhost := strings.Replace(target.URL, "127.0.0.1", "localhost", 1)

	tests := []struct {
		name  string
		loc   string
		body  []byte
		built layer.Built
		opts  Options
	}{
		{"http loopback", target.URL + "/layer.tar.gz", plain, plainBuilt, Options{}},
		{"http localhost", localhost + "/layer.tar.gz", plain, plainBuilt, Options{}},
		{"https", tlsSrv.URL + "/layer.tar.gz?X-Amz-Signature=abc", plain, plainBuilt, Options{RootCAs: pool}},
		{"content-encoding kept", encSrv.URL, plain, plainBuilt, Options{}},
		{"chunked", chunked.URL, plain, plainBuilt, Options{}},
		{"redirect", redir.URL, plain, plainBuilt, Options{}},
		{"https to http loopback", tlsRedir.URL, plain, plainBuilt, Options{RootCAs: pool2}},
		{"file", "file://" + writeFile(t, plain), plain, plainBuilt, Options{}},
		{"file localhost", "file://localhost" + writeFile(t, entry), entry, entryBuilt, Options{}},
		{"entry detected", serveBytes(t, entry).URL, entry, entryBuilt, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			got, err := New(tt.opts).Fetch(context.Background(), spec(tt.loc, tt.built), s)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got != tt.built {
				t.Errorf("Fetch = %+v, want what Pack said: %+v", got, tt.built)
			}
			assertStored(t, s, tt.body)
		})
	}
	if !entryBuilt.HasEntry || plainBuilt.HasEntry {
		t.Fatalf("test layers: HasEntry %v/%v, want true/false", entryBuilt.HasEntry, plainBuilt.HasEntry)
	}
}

func TestFetchMismatch(t *testing.T) {
	body, built := testLayer(t, false)
	size := strconv.FormatInt(built.GzipSize, 10)
	other, otherBuilt := testLayer(t, true)
	wrong := hashOf([]byte("not this layer"))

	// A server that promises the full length and sends less.
	truncated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", size)
		w.Write(body[:len(body)/2])
	}))
	t.Cleanup(truncated.Close)
	// Chunked, so no Content-Length gives the size away: only counting does.
	chunked := func(b []byte) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			w.Write(b)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	longer := append(append([]byte{}, body...), make([]byte, 4096)...)
	// Same length as the layer, other bytes: only the digest can tell.
	sameLen := append([]byte{}, body...)
	sameLen[len(sameLen)-20] ^= 0xff
	url := serveBytes(t, body).URL

	tests := []struct {
		name     string
		l        Layer
		field    string
		expected string
		actual   string
	}{
		{"gzipDigest", Layer{url, wrong, built.GzipSize, built.TarDigest}, "gzipDigest", wrong.String(), built.GzipDigest.String()},
		{"tarDigest", Layer{url, built.GzipDigest, built.GzipSize, wrong}, "tarDigest", wrong.String(), built.TarDigest.String()},
		{"size too small, Content-Length", Layer{url, built.GzipDigest, built.GzipSize - 1, built.TarDigest}, "gzipSize", strconv.FormatInt(built.GzipSize-1, 10), size + " (Content-Length)"},
		{"size too big, Content-Length", Layer{url, built.GzipDigest, built.GzipSize + 1, built.TarDigest}, "gzipSize", strconv.FormatInt(built.GzipSize+1, 10), size + " (Content-Length)"},
		{"oversized chunked body", Layer{chunked(longer).URL, built.GzipDigest, built.GzipSize, built.TarDigest}, "gzipSize", size, "more than " + size},
		{"short chunked body", Layer{chunked(body[:len(body)-7]).URL, built.GzipDigest, built.GzipSize, built.TarDigest}, "gzipSize", size, strconv.Itoa(len(body) - 7)},
		{"truncated body", Layer{truncated.URL, built.GzipDigest, built.GzipSize, built.TarDigest}, "gzipSize", size, strconv.Itoa(len(body)/2) + " (body ended early)"},
		{"corrupted byte", Layer{chunked(sameLen).URL, built.GzipDigest, built.GzipSize, built.TarDigest}, "gzipDigest", built.GzipDigest.String(), hashOf(sameLen).String()},
		{"other layer", Layer{chunked(other).URL, built.GzipDigest, otherBuilt.GzipSize, built.TarDigest}, "gzipDigest", built.GzipDigest.String(), otherBuilt.GzipDigest.String()},
		{"file size", Layer{"file://" + writeFile(t, longer), built.GzipDigest, built.GzipSize, built.TarDigest}, "gzipSize", size, strconv.Itoa(len(longer))},
		{"file tarDigest", Layer{"file://" + writeFile(t, body), built.GzipDigest, built.GzipSize, wrong}, "tarDigest", wrong.String(), built.TarDigest.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := New(Options{}).Fetch(context.Background(), tt.l, s)
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Fetch error = %v, want a *MismatchError", err)
			}
			if me.Field != tt.field || me.Expected != tt.expected || me.Actual != tt.actual {
				t.Errorf("mismatch = %+v, want field %s, expected %s, actual %s", *me, tt.field, tt.expected, tt.actual)
			}
			want := fmt.Sprintf("%s mismatch: expected %s, got %s", tt.field, tt.expected, tt.actual)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not contain %q", err, want)
			}
			assertNothingStored(t, s, tt.l.GzipDigest)
		})
	}
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchBadContent(t *testing.T) {
	_, built := testLayer(t, false)
	html := []byte("<html><body>Access denied</body></html>")
	notTar := gzipOf(t, bytes.Repeat([]byte("this is no tar archive, just text. "), 40))
	ungzipped := func() []byte {
		// The right tar, sent without compression: digests as if it were
		// the blob, so only the format check can catch it.
		body, _ := testLayer(t, false)
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var tarBuf bytes.Buffer
		if _, err := tarBuf.ReadFrom(zr); err != nil {
			t.Fatal(err)
		}
		return tarBuf.Bytes()
	}()
	tests := []struct {
		name string
		body []byte
		l    func(url string) Layer
		want error
	}{
		{"html page", html, func(u string) Layer {
			return Layer{u, hashOf(html), int64(len(html)), built.TarDigest}
		}, ErrNotGzip},
		{"bare tar", ungzipped, func(u string) Layer {
			return Layer{u, hashOf(ungzipped), int64(len(ungzipped)), built.TarDigest}
		}, ErrNotGzip},
		{"gzip of no tar", notTar, func(u string) Layer {
			return Layer{u, hashOf(notTar), int64(len(notTar)), built.TarDigest}
		}, ErrCorrupt},
		{"empty body", nil, func(u string) Layer {
			return Layer{u, built.GzipDigest, built.GzipSize, built.TarDigest}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			l := tt.l(serveBytes(t, tt.body).URL)
			_, err := New(Options{}).Fetch(context.Background(), l, s)
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Fetch error = %v, want %v", err, tt.want)
			}
			var me *MismatchError
			if tt.want == nil && (!errors.As(err, &me) || me.Field != "gzipSize") {
				t.Errorf("Fetch error = %v, want a gzipSize mismatch", err)
			}
			assertNothingStored(t, s, l.GzipDigest)
		})
	}
}

func TestLocationRefused(t *testing.T) {
	_, built := testLayer(t, false)
	tests := []struct{ loc, msg string }{
		{"", "empty location"},
		{"layer.tar.gz", "no scheme"},
		{"/abs/layer.tar.gz", "no scheme"},
		{"ftp://127.0.0.1/layer.tar.gz", `scheme "ftp"`},
		{"data:application/gzip;base64,H4sIAAAAAAAA", `scheme "data"`},
		{"gopher://localhost/x", `scheme "gopher"`},
		{"s3://bucket/layer.tar.gz", `scheme "s3"`},
		// Names that resolve nowhere: refused before any lookup.
		{"http://layers.invalid/layer.tar.gz", "loopback hosts only"},
		{"http://10.0.0.1/layer.tar.gz", "loopback hosts only"},
		{"http://127.0.0.1.invalid/layer.tar.gz", "loopback hosts only"},
		{"http://localhost.invalid/layer.tar.gz", "loopback hosts only"},
		{"https://user:secret@layers.invalid/layer.tar.gz", "credentials"},
		{"http://user@127.0.0.1/layer.tar.gz", "credentials"},
		{"https:///layer.tar.gz", "no host"},
		{"file:layer.tar.gz", "absolute path"},
		{"file://layers/layer.tar.gz", "absolute path"},
		{"file://./layer.tar.gz", "absolute path"},
		{"file:///tmp/../etc/layer.tar.gz", "clean absolute path"},
		{"https://layers.invalid/%zz", "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.loc, func(t *testing.T) {
			if err := CheckLocation(tt.loc); !errors.Is(err, ErrLocation) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("CheckLocation = %v, want ErrLocation saying %q", err, tt.msg)
			}
			s := newStore(t)
			_, err := New(Options{}).Fetch(context.Background(), spec(tt.loc, built), s)
			if !errors.Is(err, ErrLocation) {
				t.Errorf("Fetch = %v, want ErrLocation", err)
			}
			if strings.Contains(fmt.Sprint(err), "secret") {
				t.Errorf("error %q repeats the password", err)
			}
			assertNothingStored(t, s, built.GzipDigest)
		})
	}
}

func TestBadSpec(t *testing.T) {
	_, built := testLayer(t, false)
	url := serveBytes(t, nil).URL
	tests := []struct {
		name string
		l    Layer
		opts Options
		want string
		is   error
	}{
		{"zero size", Layer{url, built.GzipDigest, 0, built.TarDigest}, Options{}, "gzipSize 0: must be positive", nil},
		{"negative size", Layer{url, built.GzipDigest, -5, built.TarDigest}, Options{}, "must be positive", nil},
		{"over limit", Layer{url, built.GzipDigest, built.GzipSize, built.TarDigest}, Options{MaxSize: built.GzipSize - 1}, "above the limit", ErrTooLarge},
		{"no gzip digest", Layer{url, v1.Hash{}, built.GzipSize, built.TarDigest}, Options{}, "gzipDigest", nil},
		{"sha512 tar digest", Layer{url, built.GzipDigest, built.GzipSize, v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("a", 128)}}, Options{}, "tarDigest", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts).Fetch(context.Background(), tt.l, newStore(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Fetch = %v, want an error saying %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Fetch = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	_, built := testLayer(t, false)
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		is   error
	}{
		{"missing", filepath.Join(dir, "nope.tar.gz"), fs.ErrNotExist},
		{"directory", dir, ErrLocation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := New(Options{}).Fetch(context.Background(), spec("file://"+tt.path, built), s)
			if !errors.Is(err, tt.is) {
				t.Errorf("Fetch = %v, want %v", err, tt.is)
			}
			assertNothingStored(t, s, built.GzipDigest)
		})
	}
}

func TestRedirects(t *testing.T) {
	body, built := testLayer(t, false)
	target := serveBytes(t, body)
	// /hop/N redirects N more times, then to the layer.
	var chain *httptest.Server
	chain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if n == 0 {
			http.Redirect(w, r, target.URL, http.StatusFound)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("%s/hop/%d", chain.URL, n-1), http.StatusFound)
	}))
	t.Cleanup(chain.Close)
	loop := httptest.NewServer(nil)
	loop.Config.Handler = http.RedirectHandler("/again", http.StatusTemporaryRedirect)
	t.Cleanup(loop.Close)
	to := func(loc string) string {
		srv := httptest.NewServer(http.RedirectHandler(loc, http.StatusFound))
		t.Cleanup(srv.Close)
		return srv.URL
	}

	tests := []struct {
		name string
		loc  string
		max  int
		want error
	}{
		{"within limit", chain.URL + "/hop/1", 3, nil},
		{"at limit", chain.URL + "/hop/2", 3, nil},
		{"over limit", chain.URL + "/hop/3", 3, ErrRedirects},
		{"none allowed", chain.URL + "/hop/0", -1, ErrRedirects},
		{"default limit", chain.URL + "/hop/4", 0, nil},
		{"over default limit", chain.URL + "/hop/5", 0, ErrRedirects},
		{"loop", loop.URL + "/start", 0, ErrRedirects},
		{"to ftp", to("ftp://127.0.0.1/layer.tar.gz"), 0, ErrLocation},
		{"to remote http", to("http://layers.invalid/layer.tar.gz"), 0, ErrLocation},
		{"to file", to("file:///etc/passwd"), 0, ErrLocation},
		{"to credentials", to("http://u:p@127.0.0.1/x"), 0, ErrLocation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := New(Options{MaxRedirects: tt.max}).Fetch(context.Background(), spec(tt.loc, built), s)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				assertStored(t, s, body)
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Fetch = %v, want %v", err, tt.want)
			}
			assertNothingStored(t, s, built.GzipDigest)
		})
	}
}

func TestRedirectToLoopbackFromRemote(t *testing.T) {
	// A remote host cannot be served here, so the rule is checked on the
	// hook itself: a remote location may not bounce onto loopback.
	f := New(Options{})
	mk := func(s string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		from, to string
		want     error
	}{
		{"https://layers.example/a", "http://127.0.0.1:9090/container-token", ErrLocation},
		{"https://layers.example/a", "https://localhost/x", ErrLocation},
		{"https://layers.example/a", "https://[::1]/x", ErrLocation},
		{"https://layers.example/a", "http://layers.example/b", ErrLocation},
		{"https://layers.example/a", "https://cdn.example/b", nil},
		{"http://127.0.0.1/a", "http://localhost/b", nil},
	}
	for _, tt := range tests {
		t.Run(tt.from+" -> "+tt.to, func(t *testing.T) {
			err := f.checkRedirect(mk(tt.to), []*http.Request{mk(tt.from)})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("checkRedirect = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNoCredentialsSent(t *testing.T) {
	body, built := testLayer(t, false)
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if r.URL.Path == "/first" {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cr3t"})
			w.Header().Set("WWW-Authenticate", `Basic realm="layers"`)
			http.Redirect(w, r, "/layer", http.StatusFound)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	// A proxy from the environment must not be used (it could carry its
	// own credentials); Go bypasses proxies for loopback anyway, so the
	// transport is checked directly as well.
	t.Setenv("HTTP_PROXY", "http://proxyuser:proxypass@proxy.invalid:3128")
	f := New(Options{})
	if p := f.client.Transport.(*http.Transport).Proxy; p != nil {
		t.Error("transport has a Proxy function")
	}
	if f.client.Jar != nil {
		t.Error("client has a cookie jar")
	}
	if _, err := f.Fetch(context.Background(), spec(srv.URL+"/first", built), newStore(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(seen))
	}
	for i, h := range seen {
		for _, k := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
			if v := h.Get(k); v != "" {
				t.Errorf("request %d sent %s: %q", i, k, v)
			}
		}
	}
}

func TestStatus(t *testing.T) {
	_, built := testLayer(t, false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	_, err := New(Options{}).Fetch(context.Background(), spec(srv.URL, built), newStore(t))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || !errors.Is(err, ErrStatus) {
		t.Fatalf("Fetch = %v, want a 404 StatusError", err)
	}
}

func TestTimeouts(t *testing.T) {
	body, built := testLayer(t, false)
	// Handlers wait for the client to go away, so no goroutine outlives
	// the test.
	noHeaders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(noHeaders.Close)
	stalls := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(stalls.Close)

	tests := []struct {
		name string
		loc  string
		opts Options
		msg  string
	}{
		{"no headers", noHeaders.URL, Options{HeaderTimeout: 100 * time.Millisecond, Timeout: 10 * time.Second}, "no answer within 100ms"},
		{"stalled body", stalls.URL, Options{HeaderTimeout: 5 * time.Second, Timeout: 300 * time.Millisecond}, "not done within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			start := time.Now()
			_, err := New(tt.opts).Fetch(context.Background(), spec(tt.loc, built), s)
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Fetch = %v, want ErrTimeout saying %q", err, tt.msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("timing out took %s", d)
			}
			assertNothingStored(t, s, built.GzipDigest)
		})
	}

	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := New(Options{}).Fetch(ctx, spec(stalls.URL, built), newStore(t))
		if errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Fetch = %v, want the caller's context error, not ErrTimeout", err)
		}
	})
}

func TestRedactedErrors(t *testing.T) {
	_, built := testLayer(t, false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	_, err := New(Options{}).Fetch(context.Background(), spec(srv.URL+"/l.tar.gz?X-Amz-Signature=topsecret", built), newStore(t))
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Fetch = %v, want an error without the query", err)
	}
	if !strings.Contains(err.Error(), "/l.tar.gz?…") {
		t.Errorf("error %q does not name the location", err)
	}
}
