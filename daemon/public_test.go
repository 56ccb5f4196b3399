package daemon_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// TestPublicHandler serves a private upstream image on the local and the
// public handler: the public one never lends the developer's credentials
// to an anonymous client, takes its generated login, and has no admin
// routes.
func TestPublicHandler(t *testing.T) {
	up := regtest.AuthRegistry(t, "Basic", "bob", "hunter2")
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/test/private:latest"), base, remote.WithAuth(&authn.Basic{Username: "bob", Password: "hunter2"})); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	newDaemon := func() *daemon.Daemon {
		cfg := config.Default()
		// The developer's credentials for it stand for the Docker
		// config's: a registry they named.
		cfg.Registries = map[string]config.Registry{host(up): {}}
		d, err := daemon.New(t.Context(), daemon.Options{
			Config:   cfg,
			CacheDir: t.TempDir(),
			StateDir: stateDir,
			Layer:    testLayer(),
			Keychain: fixedKeychain{host(up): &authn.Basic{Username: "bob", Password: "hunter2"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := newDaemon()
	localURL, pubURL := serveDaemon(t, d)
	local, pub := strings.TrimPrefix(localURL, "http://"), strings.TrimPrefix(pubURL, "http://")
	name := func(addr string) string {
		return addr + "/" + strings.Replace(host(up), ":", "_", 1) + "/test/private:latest"
	}

	// The developer, on the local handler, pulls with their credentials.
	img, err := remote.Image(mustRef(t, name(local)))
	if err != nil {
		t.Fatalf("local pull: %v", err)
	}
	localDigest, _ := img.Digest()

	// An anonymous client of the public handler gets the registry's no,
	// even for the digest the store already holds.
	for _, ref := range []string{name(pub), strings.TrimSuffix(name(pub), ":latest") + "@" + localDigest.String()} {
		if _, err := remote.Image(mustRef(t, ref)); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Errorf("anonymous public pull of %s: %v, want UNAUTHORIZED", ref, err)
		}
	}
	cfg, _ := img.ConfigName()
	resp, err := http.Get("http://" + pub + "/v2/" + strings.Replace(host(up), ":", "_", 1) + "/test/private/blobs/" + cfg.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("public config blob without a token: %d, want 401", resp.StatusCode)
	}

	// Nor does the anonymous token get the base layers the developer's pull
	// left in the cache: the anonymous client asks the upstream itself.
	d.WaitIdle()
	ls, _ := img.Layers()
	layer0, _ := ls[0].Digest()
	req, _ := http.NewRequest("GET", "http://"+pub+"/v2/"+strings.Replace(host(up), ":", "_", 1)+"/test/private/blobs/"+layer0.String(), nil)
	req.Header.Set("Authorization", "Bearer anonymous")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("public anonymous GET of a cached private layer: %d, want 401 from the upstream", resp.StatusCode)
	}

	// With the generated login, kept in the state directory, it works.
	pw, err := os.ReadFile(filepath.Join(stateDir, "public-password"))
	if err != nil {
		t.Fatal(err)
	}
	login := remote.WithAuth(&authn.Basic{Username: "towerreg", Password: strings.TrimSpace(string(pw))})
	got, err := remote.Image(mustRef(t, name(pub)), login)
	if err != nil {
		t.Fatalf("public pull after login: %v", err)
	}
	if d, _ := got.Digest(); d != localDigest {
		t.Errorf("public pull gave %s, local %s", d, localDigest)
	}
	wrong := remote.WithAuth(&authn.Basic{Username: "towerreg", Password: "guess"})
	if _, err := remote.Image(mustRef(t, name(pub)), wrong); err == nil {
		t.Error("a wrong public login pulled")
	}

	// Admin routes do not exist on the public handler.
	for _, p := range []string{"/validate-creds", "/container-token", "/_towerreg/status", "/_towerreg/events"} {
		for _, method := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(method, "http://"+pub+p, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("public %s %s: %d, want 404", method, p, resp.StatusCode)
			}
		}
	}

	// The generated password outlives a restart.
	newDaemon()
	pw2, err := os.ReadFile(filepath.Join(stateDir, "public-password"))
	if err != nil || string(pw2) != string(pw) {
		t.Errorf("the public password changed across a restart: %v", err)
	}
}
