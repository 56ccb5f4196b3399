package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/layer"
)

// issueLocal asks the local handler at local (host:port) for a container
// token for image and returns the token's route under it:
// "wt/<token>/<repository>".
func issueLocal(t *testing.T, local, image string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"containerImage": image})
	return issueLocalBody(t, local, body)
}

// issueLocalBody is issueLocal with the whole request body.
func issueLocalBody(t *testing.T, local string, body []byte) string {
	t.Helper()
	resp, err := http.Post("http://"+local+"/container-token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("container-token: %d %s", resp.StatusCode, out)
	}
	var a tokenAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatal(err)
	}
	_, path, ok := strings.Cut(a.TargetImage, "/wt/")
	if !ok {
		t.Fatalf("targetImage %q names no token", a.TargetImage)
	}
	path, _, _ = strings.Cut(path, ":")
	return "wt/" + path
}

// TestPublicTokenBlobs: a container token's base layers through the
// public handler are passed on as the upstream's redirect, when the
// redirect's target is one the developer named; to a private target they
// did not name, the daemon streams instead (the policy an internet client
// gets, although the token's registry itself may be anywhere). The local
// handler's token route streams either way (blobs.local).
func TestPublicTokenBlobs(t *testing.T) {
	for _, tt := range []struct {
		name         string
		nameStorage  bool
		wantRedirect bool
	}{
		{"storage named", true, true},
		{"storage not named", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, storage, storageHits := redirectingUpstream(t)
			img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
			if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			// The upstream is not named: a token's registry is reached
			// wherever it is, because the developer named the image.
			cfg.Public.AnonymousRegistries = nil
			if tt.nameStorage {
				cfg.Public.AnonymousRegistries = []string{host(storage)}
			}
			s := servePublic(t, cfg, authn.NewMultiKeychain())
			route := issueLocal(t, s.local, host(up)+"/test/img:latest")
			served, err := remote.Image(mustRef(t, s.public+"/"+route+":latest"))
			if err != nil {
				t.Fatal(err)
			}
			base, _ := img.Layers()
			d, _ := base[0].Digest()
			storageHits.Store(0)
			resp := noFollow(t, "http://"+s.public+"/v2/"+route+"/blobs/"+d.String())
			want := storage.URL + "/v2/test/img/blobs/" + d.String() + "?X-Amz-Signature=signed"
			switch {
			case tt.wantRedirect && (resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want):
				t.Errorf("public token route: %d to %q, want 307 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
			case !tt.wantRedirect && resp.StatusCode != http.StatusOK:
				t.Errorf("public token route: %d to %q, want the blob streamed: the redirect's target is private and not named",
					resp.StatusCode, resp.Header.Get("Location"))
			}
			if hits := storageHits.Load(); tt.wantRedirect != (hits == 0) {
				t.Errorf("the daemon read %d blobs from storage, want redirect %v", hits, tt.wantRedirect)
			}
			if resp := noFollow(t, "http://"+s.local+"/v2/"+route+"/blobs/"+d.String()); resp.StatusCode != http.StatusOK {
				t.Errorf("local token route: %d, want the blob streamed (blobs.local)", resp.StatusCode)
			}
			if err := validate.Image(served); err != nil {
				t.Errorf("pull through the public token route: %v", err)
			}
		})
	}
}

// TestTokenLayersOffloaded: a container token's own layers are uploaded
// to the offload store when the token is issued; a public pull through
// the token's route then gets a 307 there for them, and the presigned URL
// serves the layer's bytes. The local handler's token route serves them
// from the store. A daemon started again knows them offloaded.
func TestTokenLayersOffloaded(t *testing.T) {
	srv, off := offloadStore(t)
	up := httptest.NewServer(registry.New(registry.Logger(quiet)))
	t.Cleanup(up.Close)
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	packed, err := layer.Pack(t.Context(), fstest.MapFS{"opt/hello.txt": {Data: []byte("a token's layer\n")}}, &gz)
	if err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(gz.Bytes()) }))
	t.Cleanup(files.Close)

	cfg := config.Default()
	cfg.Offload = off
	opts := daemon.Options{Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(),
		Layer: testLayer(), LayerSource: "test", Keychain: authn.NewMultiKeychain()}
	d, err := daemon.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	local, public := serveDaemon(t, d)
	local, public = strings.TrimPrefix(local, "http://"), strings.TrimPrefix(public, "http://")
	body, _ := json.Marshal(map[string]any{"containerImage": host(up) + "/test/img:latest",
		"containerConfig": map[string]any{"layers": []map[string]any{{"location": files.URL + "/l.tar.gz",
			"gzipDigest": packed.GzipDigest.String(), "gzipSize": packed.GzipSize, "tarDigest": packed.TarDigest.String()}}}})
	route := issueLocalBody(t, local, body)
	waitOffloaded(t, d, packed.GzipDigest) // issued: its upload started, with no pull yet

	if _, err := remote.Get(mustRef(t, public+"/"+route+":latest")); err != nil {
		t.Fatal(err)
	}
	resp := noFollow(t, "http://"+public+"/v2/"+route+"/blobs/"+packed.GzipDigest.String())
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect ||
		!strings.HasPrefix(loc, srv.URL+"/layers/dev/blobs/sha256/"+packed.GzipDigest.Hex) {
		t.Errorf("public token route, the token's layer: %d to %q, want 307 to the offload store", resp.StatusCode, loc)
	}
	if resp := noFollow(t, "http://"+local+"/v2/"+route+"/blobs/"+packed.GzipDigest.String()); resp.StatusCode != http.StatusOK {
		t.Errorf("local token route, the token's layer: %d, want 200 from the store", resp.StatusCode)
	}

	// A daemon started again over the same state knows the live token's
	// layer is offloaded (its upload states are not kept): it looks again.
	again, err := daemon.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	waitOffloaded(t, again, packed.GzipDigest)
}
