package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adrg/xdg"

	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// TestUpLogFile runs `up` headless (stdout is no terminal) and checks the
// log goes to the private log file in the asked format, and to stderr.
func TestUpLogFile(t *testing.T) {
	for _, tt := range []struct {
		format string
		isLine func(string) bool
	}{
		{"json", func(l string) bool { return json.Valid([]byte(l)) }},
		{"text", func(l string) bool { return strings.HasPrefix(l, "time=") && strings.Contains(l, " level=") }},
	} {
		t.Run(tt.format, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			for k, v := range map[string]string{"XDG_STATE_HOME": state, "XDG_CACHE_HOME": t.TempDir(), "XDG_CONFIG_HOME": t.TempDir()} {
				t.Setenv(k, v)
			}
			xdg.Reload()
			t.Cleanup(xdg.Reload)
			ctx, cancel := context.WithCancel(t.Context())
			var stdout, stderr syncbuf.Buffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"up", "--listen", "127.0.0.1:0", "--log-format", tt.format}, &stdout, &stderr)
			}()
			logPath := filepath.Join(state, "towerreg", "towerreg.log")
			deadline := time.Now().Add(30 * time.Second)
			for {
				b, _ := os.ReadFile(logPath)
				if bytes.Contains(b, []byte("ready")) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no ready line in %s; stderr:\n%s", logPath, stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("up: %v", err)
			}
			b, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if !tt.isLine(l) {
					t.Errorf("not a %s log line: %q", tt.format, l)
				}
			}
			if !strings.Contains(stderr.String(), "ready") {
				t.Errorf("headless, stderr has no log:\n%s", stderr.String())
			}
			for p, want := range map[string]os.FileMode{logPath: 0o600, filepath.Dir(logPath): 0o700} {
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
				}
			}
		})
	}
}

func TestUpLogFormatInvalid(t *testing.T) {
	err := run(t.Context(), []string{"up", "--log-format", "xml"}, &syncbuf.Buffer{}, &syncbuf.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("got %v, want an error about --log-format", err)
	}
}

// TestUpOffload: --offload names the store (the config file only its
// endpoint), and the first generation lands there; a URL that is not
// s3:// is refused before anything starts.
func TestUpOffload(t *testing.T) {
	err := run(t.Context(), []string{"up", "--offload", "https://layers.example.com/x"}, &syncbuf.Buffer{}, &syncbuf.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--offload") {
		t.Fatalf("up --offload https://...: %v, want an error naming the flag", err)
	}

	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "layers")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	cfgHome := t.TempDir()
	for k, v := range map[string]string{"XDG_STATE_HOME": t.TempDir(), "XDG_CACHE_HOME": t.TempDir(), "XDG_CONFIG_HOME": cfgHome} {
		t.Setenv(k, v)
	}
	xdg.Reload()
	t.Cleanup(xdg.Reload)
	if err := os.MkdirAll(filepath.Join(cfgHome, "towerreg"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgHome, "towerreg", "config.yml"), []byte("offload:\n  endpoint: "+srv.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"up", "--listen", "127.0.0.1:0", "--offload", "s3://" + bucket + "/cli"}, &syncbuf.Buffer{}, &stderr)
	}()
	objects := filepath.Join(srv.Dir, bucket, "cli", "blobs", "sha256")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if es, _ := os.ReadDir(objects); len(es) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing uploaded under %s in 30 s; stderr:\n%s", objects, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("up: %v", err)
	}
}
