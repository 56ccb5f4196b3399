package daemon_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/internal/regtest"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// TestCredentialsStayHome: the developer's registry password, configured
// for one registry, reaches that registry's token endpoint only. Blobs
// the registry redirects to another host (a CDN, as Docker Hub and quay.io
// do) are fetched without the Authorization header, and neither the
// password nor the bearer token it buys shows in the logs (at debug), the
// events (what the dashboard and /_towerreg/events show) or the status.
func TestCredentialsStayHome(t *testing.T) {
	// The password has characters that JSON, a query and a path each
	// escape, so that each escaped form below differs from the raw one.
	const user, pass, bearer = "dev", `pa55 W&rd/"7f<3e91+`, "bearer-tok-5c1d2a"
	reg := registry.New(registry.Logger(quiet))

	// The CDN is another host name for the same machine: localhost, where
	// the registry is 127.0.0.1.
	var cdnAuth atomic.Value
	cdnAuth.Store("")
	var cdnHits atomic.Int32
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnHits.Add(1)
		if a := r.Header.Get("Authorization"); a != "" {
			cdnAuth.Store(a)
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/cdn")
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(cdn.Close)
	cdnURL := strings.Replace(cdn.URL, "127.0.0.1", "localhost", 1)

	var redirect atomic.Bool
	srv := httptest.NewServer(&regtest.BearerGate{User: user, Pass: pass, Token: bearer,
		Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if redirect.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				http.Redirect(w, r, cdnURL+"/cdn"+r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			reg.ServeHTTP(w, r)
		})})
	t.Cleanup(srv.Close)
	base := randomImage(t, types.DockerManifestSchema2, v1.Config{})
	if err := remote.Write(mustRef(t, host(srv)+"/test/private:latest"), base, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	redirect.Store(true)

	cfg := config.Default()
	cfg.Registries = map[string]config.Registry{host(srv): {Login: config.Login{Username: user, Password: pass}}}
	kc, err := cfg.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	bus := event.NewBus(nil)
	sub := bus.Subscribe(4096)
	defer sub.Close()
	logSub := bus.Subscribe(4096) // the log lines of --no-tui
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), LayerSource: "test",
		Keychain: kc, Bus: bus, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.WaitIdle)
	proxy := httptest.NewServer(d.Handler())
	t.Cleanup(proxy.Close)
	through := host(proxy) + "/" + pathHost(srv) + "/test/private"

	img, err := remote.Image(mustRef(t, through+":latest"))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pull: %v", err)
	}
	if cdnHits.Load() == 0 {
		t.Fatal("no blob went through the CDN: the redirect was not exercised")
	}
	if a := cdnAuth.Load().(string); a != "" {
		t.Fatalf("the CDN, another host, got the Authorization header %q", a)
	}
	// Failures log more: a missing tag and a missing blob, and a
	// validate-creds call with a wrong and with the right password.
	for _, u := range []string{"/v2/" + pathHost(srv) + "/test/private/manifests/nope",
		"/v2/" + pathHost(srv) + "/test/private/blobs/sha256:" + strings.Repeat("0", 64)} {
		resp, err := http.Get(proxy.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, p := range []string{pass + "x", pass} {
		body, _ := json.Marshal(map[string]string{"userName": user, "password": p, "registry": host(srv)})
		resp, err := http.Post(proxy.URL+"/validate-creds", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(proxy.URL + "/_towerreg/status")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.WaitIdle()
	logSub.Close()
	event.Log(t.Context(), logSub, log) // writes what is buffered, then returns

	var events strings.Builder
	n := 0
	for len(sub.C()) > 0 {
		e := <-sub.C()
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		events.Write(b)
		n++
	}
	if n == 0 || logs.String() == "" {
		t.Fatalf("%d events and %d bytes of logs: nothing to search", n, len(logs.String()))
	}
	secrets := map[string]string{
		"password":                  pass,
		"basic credentials":         base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		"bearer token":              bearer,
		"password, JSON'd":          strings.Trim(string(must1(json.Marshal(pass))), `"`),
		"password, in a query":      url.QueryEscape(pass),
		"password, in a URL's path": url.PathEscape(pass),
	}
	for where, text := range map[string]string{"logs": logs.String(), "events": events.String(), "status": string(status)} {
		for what, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s show the %s", where, what)
			}
		}
	}
}

func must1[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestFilesArePrivate: after pulls, a cached blob and a container token,
// every file the daemon wrote in its cache and state directories is
// readable by the user alone (0600), and every directory 0700.
func TestFilesArePrivate(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	state := t.TempDir()
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: config.Default(), CacheDir: e.cacheDir, StateDir: state, Layer: testLayer(), LayerSource: "test",
		Keychain: authn.NewMultiKeychain(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.WaitIdle)
	proxy := httptest.NewServer(d.Handler())
	t.Cleanup(proxy.Close)
	e.push(t, "test/img", "latest", randomImage(t, types.OCIManifestSchema1, v1.Config{}))
	img, err := remote.Image(mustRef(t, host(proxy)+"/"+pathHost(e.upstream)+"/test/img:latest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"containerImage":%q}`, host(e.upstream)+"/test/img:latest")
	resp, err := http.Post(proxy.URL+"/container-token", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("container token: %d %s", resp.StatusCode, b)
	}
	d.WaitIdle()

	files := 0
	for _, root := range []string{e.cacheDir, state} {
		err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err // the roots are the test's own temporary dirs
			}
			fi, err := de.Info()
			if err != nil {
				return err
			}
			want := os.FileMode(0o600)
			if de.IsDir() {
				want = 0o700
			} else {
				files++
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 5 {
		t.Fatalf("only %d files written: the walk proved little", files)
	}
}
