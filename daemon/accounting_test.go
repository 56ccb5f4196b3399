package daemon_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/config"
)

// TestRedirectAccounting: a public pull whose base layers are redirected
// counts one upstream redirect per layer, saves their sizes as the
// manifest it served gave them, and sends none of their bytes on the
// public face; the local handler's stream counts as local.
func TestRedirectAccounting(t *testing.T) {
	up, storage, _ := redirectingUpstream(t)
	img := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/test/img:latest"), img); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Blobs.Public = config.BlobsRedirect
	cfg.Public.AnonymousRegistries = []string{host(up), host(storage)}
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), Keychain: authn.NewMultiKeychain(),
	})
	if err != nil {
		t.Fatal(err)
	}
	local, public := serveDaemon(t, d)
	public = strings.TrimPrefix(public, "http://")
	// The manifest GET, which tells the daemon the layers' sizes.
	if _, err := remote.Image(mustRef(t, public+"/"+under(host(up))+"/test/img:latest")); err != nil {
		t.Fatal(err)
	}
	base, _ := img.Layers()
	var saved int64
	for _, l := range base {
		dg, _ := l.Digest()
		n, _ := l.Size()
		saved += n
		if resp := noFollow(t, "http://"+public+"/v2/"+under(host(up))+"/test/img/blobs/"+dg.String()); resp.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("base layer %s: %d, want a redirect", dg, resp.StatusCode)
		}
	}
	dg, _ := base[0].Digest()
	resp, err := http.Get(local + "/v2/" + under(host(up)) + "/test/img/blobs/" + dg.String())
	if err != nil {
		t.Fatal(err)
	}
	streamed, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	want := admin.Traffic{
		LocalBytes: streamed,
		Redirects:  admin.Redirects{Upstream: int64(len(base))},
		SavedBytes: saved,
	}
	// The event of an answer is published as its handler returns, which
	// may be just after the client has it.
	var got admin.Traffic
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = d.Status().Counts.Traffic; got == want {
			break
		}
	}
	if got != want {
		t.Errorf("traffic %+v, want %+v", got, want)
	}
}
