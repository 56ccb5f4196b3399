// Package s3test runs a real S3 server on loopback for tests: versitygw
// with its posix backend, which serves a directory (a bucket is a
// subdirectory, an object a file), so tests can lay out large fixtures with
// plain file writes and check uploads on disk.
//
// `make tools` installs versitygw into <repo>/bin. Without it (or without
// root and /dev/fuse for NeedFUSE) a test skips with a loud reason, and
// fails instead where the tests are required: CI set, or
// TOWERREG_E2E=require, as in e2e/.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tower-reg/tower-reg/internal/prereq"
)

// The root account of every test server. Tests that check that secrets
// are never printed look for SecretKey in the output.
const (
	AccessKey = "towerregtestkey"
	SecretKey = "towerreg-test-secret-9c41e2"
)

// Server is one running versitygw.
type Server struct {
	// URL is http://127.0.0.1:PORT, for AWS_ENDPOINT_URL.
	URL string
	// Host is 127.0.0.1:PORT.
	Host string
	// Dir is the posix backend's root: Dir/<bucket>/<key>.
	Dir string
	// Client is signed with the root account.
	Client *minio.Client
	// accessLog is the server's S3 access log: one line per request.
	accessLog string
}

// NeedFUSE skips or fails tb unless it can mount FUSE file systems: root
// and /dev/fuse.
func NeedFUSE(tb testing.TB) {
	tb.Helper()
	prereq.Gate(tb, "a real S3 server")
	prereq.Root(tb, "mounting FUSE with mount(2)")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		prereq.Missing(tb, "no /dev/fuse", "modprobe fuse, or run where /dev/fuse exists")
	}
}

// Binary finds versitygw: <repo>/bin first, where `make tools` puts it,
// then PATH.
func Binary(tb testing.TB) string {
	tb.Helper()
	prereq.Gate(tb, "a real S3 server")
	return prereq.Tool(tb, "versitygw", "make tools (go install github.com/versity/versitygw/cmd/versitygw into <repo>/bin)")
}

// Start runs versitygw on a free loopback port with a fresh directory,
// and stops it when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := Binary(tb)
	dir := tb.TempDir()
	// Outside the backend's directory, which would list it as a bucket.
	accessLog := filepath.Join(tb.TempDir(), "access.log")
	var lastErr error
	// Another process may take the free port between the probe and the
	// server's bind: try a few.
	for range 3 {
		s, err := start(tb, bin, dir, accessLog)
		if err == nil {
			return s
		}
		lastErr = err
	}
	tb.Fatalf("versitygw: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin, dir, accessLog string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", host, "--quiet", "--access-log", accessLog, "posix", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("exited (%v) before it listened on %s:\n%s", err, host, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("not listening on %s after 15s:\n%s", host, out.String())
		}
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	client, err := newClient(host)
	if err != nil {
		return nil, err
	}
	return &Server{URL: "http://" + host, Host: host, Dir: dir, Client: client, accessLog: accessLog}, nil
}

// Bucket creates a bucket.
func (s *Server) Bucket(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		tb.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// Env is the environment a container (or the entry) needs to mount
// buckets from s: endpoint, region and root credentials.
func (s *Server) Env(buckets ...string) []string {
	return []string{
		"NXF_FUSION_BUCKETS=" + strings.Join(buckets, ","),
		"AWS_ENDPOINT_URL=" + s.URL,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
	}
}

// WriteObject lays an object out directly in the backend's directory:
// much faster than PUTs for large fixtures.
func (s *Server) WriteObject(tb testing.TB, bucket, key string, data []byte) {
	tb.Helper()
	p := filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// newClient is a client of the server at host with the root account.
func newClient(host string) (*minio.Client, error) {
	return minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(AccessKey, SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
}
