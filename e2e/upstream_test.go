package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// ---------------------------------------------------------------------------
// Upstream registry

// upstream is a docker-registry (distribution 2.8) on 127.0.0.1, no auth,
// storage in the test's temp dir, or in a bucket on a versitygw
// (startS3Upstream).
type upstream struct {
	Host string // 127.0.0.1:PORT
	// S3 is the S3 server the registry stores its blobs on, nil for a
	// registry on the file system.
	S3 *s3test.Server
}

// ref names repo ("test/busybox:latest") on the upstream.
func (u *upstream) ref(repo string) string { return u.Host + "/" + repo }

const registryConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
%s  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: e2e-not-secret
`

// filesystemStorage is registryConfig's storage driver for a directory.
const filesystemStorage = `  filesystem:
    rootdirectory: %q
`

// htpasswdConfig turns on distribution's Basic auth from an htpasswd file.
const htpasswdConfig = `auth:
  htpasswd:
    realm: e2e
    path: %q
`

// startUpstream starts an empty upstream registry.
func startUpstream(tb testing.TB) *upstream {
	tb.Helper()
	return startRegistry(tb, "")
}

// startUpstreamAuth starts an empty upstream registry that takes only
// user:password, by Basic auth.
func startUpstreamAuth(tb testing.TB, user, password string) *upstream {
	tb.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return startRegistry(tb, fmt.Sprintf(htpasswdConfig, path))
}

func startRegistry(tb testing.TB, extraConfig string) *upstream {
	tb.Helper()
	dir := tb.TempDir()
	storage := fmt.Sprintf(filesystemStorage, filepath.Join(dir, "storage"))
	return startRegistryWith(tb, dir, storage, os.Environ(), extraConfig)
}

// startRegistryWith starts a docker-registry with its config in dir, the
// given storage driver block (indented under storage:) and environment.
func startRegistryWith(tb testing.TB, dir, storage string, env []string, extraConfig string) *upstream {
	tb.Helper()
	bin := need(tb, "docker-registry")
	_, addr := startServer(tb, "docker-registry", env, bin, func(addr string) ([]string, error) {
		cfg := filepath.Join(dir, "config.yml")
		data := fmt.Sprintf(registryConfig, storage, addr) + extraConfig
		if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
			return nil, err
		}
		return []string{"serve", cfg}, nil
	})
	return &upstream{Host: addr}
}

// startUpstreamWithImages starts an upstream holding the test images.
func startUpstreamWithImages(tb testing.TB) (*upstream, *fixtures) {
	tb.Helper()
	fx := testImages(tb) // before the registry: it may skip for busybox
	u := startUpstream(tb)
	start := time.Now()
	u.push(tb, repoBusybox, fx.Busybox)
	u.push(tb, repoEcho, fx.Echo)
	u.push(tb, repoNoShell, fx.NoShell)
	u.pushIndex(tb, repoMulti, fx.Multi)
	tb.Logf("pushed the test images in %v", time.Since(start).Round(time.Millisecond))
	return u, fx
}

func (u *upstream) tag(tb testing.TB, repo string) name.Tag {
	tb.Helper()
	tag, err := name.NewTag(u.ref(repo), name.Insecure, name.StrictValidation)
	if err != nil {
		tb.Fatal(err)
	}
	return tag
}

func (u *upstream) push(tb testing.TB, repo string, img v1.Image) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := remote.Write(u.tag(tb, repo), img, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("push %s: %v", repo, err)
	}
}

func (u *upstream) pushIndex(tb testing.TB, repo string, idx v1.ImageIndex) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := remote.WriteIndex(u.tag(tb, repo), idx, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("push %s: %v", repo, err)
	}
}
