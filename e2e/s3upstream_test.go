package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// ---------------------------------------------------------------------------
// An S3-backed upstream

// s3Storage is distribution 2.8's s3 storage driver on a versitygw on
// loopback. What it needs there:
//   - region: required, and checked against AWS's list only when
//     regionendpoint is empty; us-east-1 is what versitygw signs for.
//   - regionendpoint: a custom endpoint also turns on path-style
//     addressing (2.8 has no forcepathstyle key: it sets S3ForcePathStyle
//     itself whenever regionendpoint is set), so no bucket DNS names.
//   - secure: false for plain HTTP; v4auth: true, the only signature
//     versitygw takes.
//   - accesskey/secretkey: the server's root account, so nothing is read
//     from the environment or ~/.aws.
//
// storage.redirect is left out: its default (disable: false) is what makes
// the registry answer a blob GET with a 307 to a presigned GET on the
// bucket (20 minutes), as Docker Hub answers with its CDN.
const s3Storage = `  s3:
    accesskey: %q
    secretkey: %q
    region: us-east-1
    regionendpoint: %q
    bucket: %q
    rootdirectory: /registry
    secure: false
    v4auth: true
`

// startS3Upstream starts an empty docker-registry that keeps its blobs in
// a bucket on its own versitygw (u.S3), and answers blob GETs with a 307
// to a presigned URL on that versitygw (127.0.0.1).
func startS3Upstream(tb testing.TB) *upstream {
	tb.Helper()
	need(tb, "docker-registry") // before versitygw: the same skip for both
	s3 := s3test.Start(tb)
	bucket := s3.Bucket(tb, "registry")
	storage := fmt.Sprintf(s3Storage, s3test.AccessKey, s3test.SecretKey, s3.URL, bucket)
	u := startRegistryWith(tb, tb.TempDir(), storage, s3RegistryEnv(), "")
	u.S3 = s3
	return u
}

// s3RegistryEnv is the environment without the AWS variables. With
// AWS_CA_BUNDLE set, to any file, docker-registry panics at start ("failed
// to create new session with aws config: LoadCustomCABundleError: unable
// to load custom CA bundle, HTTPClient's transport unsupported type"): the
// driver gives the SDK its own transport. AWS_PROFILE, AWS_REGION or
// AWS_ENDPOINT_URL from the host must not change where it goes either.
func s3RegistryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestS3UpstreamRedirects checks the S3-backed upstream the redirect tests
// stand on: after a push, a blob GET answers 307 to a presigned URL on the
// upstream's versitygw, not on the registry, that serves the blob's exact
// bytes to a client with no credentials of its own, and skopeo copies the
// image from it directly, following those redirects and checking digests.
func TestS3UpstreamRedirects(t *testing.T) {
	fx := testImages(t)
	u := startS3Upstream(t)
	u.push(t, repoBusybox, fx.Busybox)
	l := mustLayer(t, fx.Busybox, 0)
	dg, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}

	loc := blobRedirect(t, u, repoName(repoBusybox), dg.String())
	if loc.Host != u.S3.Host {
		t.Errorf("the redirect goes to %s, want the versitygw at %s", loc.Host, u.S3.Host)
	}
	if loc.Query().Get("X-Amz-Signature") == "" || loc.Query().Get("X-Amz-Expires") == "" {
		t.Errorf("the redirect is not a presigned URL: %s", loc.Redacted())
	}
	// A client with no credentials: only the signature in the URL.
	resp, err := http.Get(loc.String())
	if err != nil {
		t.Fatalf("GET the presigned URL: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the presigned URL: %s, %v", resp.Status, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != dg.String() || n != size {
		t.Errorf("the presigned URL served %d bytes with digest %s, want %d bytes of %s", n, got, size, dg)
	}

	// skopeo follows the redirects and checks every blob.
	sk := newSkopeo(t)
	dir := sk.copyToOCI(t, u.ref(repoBusybox), false)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Blob(dg); err != nil {
		t.Errorf("skopeo's copy has no %s: %v", dg, err)
	}
}

// blobRedirect GETs a blob from u without following redirects, checks
// that the answer is a 307, and returns its Location.
func blobRedirect(tb testing.TB, u *upstream, repo, digest string) *url.URL {
	tb.Helper()
	resp, body := do(tb, http.MethodGet, "http://"+u.Host+"/v2/"+repo+"/blobs/"+digest)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		tb.Fatalf("GET blob %s: %s, want 307 to the bucket; body: %.300s", digest, resp.Status, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme != "http" {
		tb.Fatalf("GET blob %s: Location %q (%v), want an http URL", digest, resp.Header.Get("Location"), err)
	}
	if host, _, err := net.SplitHostPort(loc.Host); err != nil || host != "127.0.0.1" {
		tb.Errorf("the redirect goes to %q, want 127.0.0.1", loc.Host)
	}
	return loc
}
