package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCommand prints the effective config of a file that holds every
// kind of secret: none of them is printed, the defaults and the names of
// where secrets live are.
func TestConfigCommand(t *testing.T) {
	const (
		regPassword = "reg-Pa55-in-file"
		pubPassword = "pub-Pa55-in-file"
		fileToken   = "2fileNgrokTok3n"
		envToken    = "2envNgrokTok3n"
	)
	dir := t.TempDir()
	tests := []struct {
		name    string
		yaml    string
		env     string // NGROK_AUTHTOKEN
		want    []string
		wantErr string
	}{
		{name: "no file", want: []string{"listen: 127.0.0.1:9090", "default_registry: docker.io", "provider: \"off\"",
			"token_ttl: 24h0m0s", "timeout: 1m0s", "max_conns: 64", "token_requests_per_minute: 60", "public_conns_per_client: 32",
			"blobs:\n  public: redirect\n  local: stream"}},
		{name: "blobs set", yaml: "blobs:\n  public: stream\n", want: []string{"blobs:\n  public: stream\n  local: stream"}},
		{name: "bounds set", yaml: "upstream:\n  timeout: 5s\n  max_conns: 4\nlimits:\n  token_requests_per_minute: -1\n  public_conns_per_client: 8\n",
			want: []string{"timeout: 5s", "header_timeout: 20s", "max_conns: 4", "token_requests_per_minute: -1", "public_conns_per_client: 8"}},
		{name: "secrets in the file",
			yaml: "registries:\n  quay.io:\n    username: me\n    password: " + regPassword + "\n  ghcr.io:\n    username: gh\n    password_env: GHCR_TOKEN\n" +
				"public:\n  username: ci\n  password: " + pubPassword + "\ntunnel:\n  authtoken: " + fileToken + "\n  domain: reg.ngrok.app\n",
			want: []string{"password: \"********\"", "password_env: GHCR_TOKEN", "authtoken: \"********\"", "provider: ngrok", "domain: reg.ngrok.app", "username: ci"}},
		{name: "offload", yaml: "offload:\n  url: s3://layers/dev\n  endpoint: http://127.0.0.1:7070\n",
			want: []string{"offload:\n  url: s3://layers/dev\n  endpoint: http://127.0.0.1:7070\n  presign_ttl: 15m0s"}},
		{name: "local hosts", yaml: "local:\n  hosts: [devbox.lan]\n", want: []string{"local:\n  hosts:\n  - devbox.lan"}},
		{name: "token from the environment", env: envToken, want: []string{"provider: ngrok"}},
		{name: "malformed", yaml: "listen: 127.0.0.1:1\ntunnel:\n  provider: nope\n", wantErr: ":3: tunnel.provider"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NGROK_AUTHTOKEN", tt.env)
			path := filepath.Join(dir, "missing.yml")
			if tt.yaml != "" {
				path = filepath.Join(dir, strings.Repeat("c", i+1)+".yml")
				if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"config", "--config", path}, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("config: %v; want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("config: %v\n%s", err, stderr.String())
			}
			out := stdout.String()
			for _, secret := range []string{regPassword, pubPassword, fileToken, envToken} {
				if strings.Contains(out, secret) {
					t.Errorf("the output holds the secret %q:\n%s", secret, out)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
