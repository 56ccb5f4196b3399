package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TR_TEST_PW", "from-env")
	tests := []struct {
		name    string
		yaml    string
		want    func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "missing file", yaml: "", want: func(t *testing.T, c Config) {
			if c.Listen != DefaultListen || c.DefaultRegistry != DefaultRegistry || c.CacheMaxBytes != DefaultCacheMaxBytes {
				t.Fatalf("defaults not applied: %+v", c)
			}
		}},
		{name: "cache size", yaml: "cache_max_bytes: 1048576\n", want: func(t *testing.T, c Config) {
			if c.CacheMaxBytes != 1<<20 {
				t.Fatalf("cache_max_bytes = %d, want 1048576", c.CacheMaxBytes)
			}
		}},
		{name: "cache unlimited", yaml: "cache_max_bytes: -1\n", want: func(t *testing.T, c Config) {
			if c.CacheMaxBytes != -1 {
				t.Fatalf("cache_max_bytes = %d, want -1", c.CacheMaxBytes)
			}
		}},
		{name: "public", yaml: "public:\n  listen: 0.0.0.0:9443\n  username: ci\n  password_env: TR_TEST_PW\n", want: func(t *testing.T, c Config) {
			pw, err := c.Public.Secret()
			if c.Public.Listen != "0.0.0.0:9443" || c.Public.Username != "ci" || err != nil || pw != "from-env" {
				t.Fatalf("public = %+v, password %q, %v", c.Public, pw, err)
			}
		}},
		{name: "token ttl", yaml: "token_ttl: 90m\n", want: func(t *testing.T, c Config) {
			if c.TokenTTL.Value() != 90*time.Minute {
				t.Fatalf("token_ttl = %v", c.TokenTTL.Value())
			}
		}},
		{name: "bad token ttl", yaml: "listen: 127.0.0.1:1\ntoken_ttl: soon\n", wantErr: `config.yml:2: token_ttl: "soon" is not a duration`},
		{name: "negative token ttl", yaml: "token_ttl: -1h\n", wantErr: `config.yml:1: token_ttl: "-1h" is negative`},
		{name: "override", yaml: "listen: 127.0.0.1:1\ndefault_registry: quay.io\n", want: func(t *testing.T, c Config) {
			if c.Listen != "127.0.0.1:1" || c.DefaultRegistry != "quay.io" {
				t.Fatalf("got %+v", c)
			}
		}},
		{name: "registries", yaml: "registries:\n  quay.io:\n    username: u\n    password_env: TR_TEST_PW\n  docker.io:\n    username: d\n    password_file: " + pwFile + "\n  10.0.0.5:5000:\n    insecure: true\n",
			want: func(t *testing.T, c Config) {
				if got := c.Insecure(); len(got) != 1 || got[0] != "10.0.0.5:5000" {
					t.Fatalf("insecure = %v", got)
				}
				kc, err := c.Keychain()
				if err != nil {
					t.Fatal(err)
				}
				for reg, want := range map[string]authn.AuthConfig{
					"quay.io":         {Username: "u", Password: "from-env"},
					"index.docker.io": {Username: "d", Password: "from-file"},
					"ghcr.io":         {},
				} {
					r, _ := name.NewRegistry(reg)
					a, err := kc.Resolve(r)
					if err != nil {
						t.Fatal(err)
					}
					got, _ := a.Authorization()
					if got.Username != want.Username || got.Password != want.Password {
						t.Errorf("%s: got %q/%q, want %q/%q", reg, got.Username, got.Password, want.Username, want.Password)
					}
				}
			}},
		{name: "unknown key", yaml: "listen: x\nlisten_addr: y\n", wantErr: "listen_addr"},
		{name: "malformed", yaml: "listen: [\n", wantErr: "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yml")
			if tt.yaml != "" {
				if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want(t, c)
		})
	}
}

func TestMissingPasswordEnv(t *testing.T) {
	c := Config{Registries: map[string]Registry{"quay.io": {Login: Login{Username: "u", PasswordEnv: "TR_TEST_UNSET_VAR"}}}}
	if _, err := c.Keychain(); err == nil || !strings.Contains(err.Error(), "TR_TEST_UNSET_VAR") {
		t.Fatalf("Keychain error = %v, want it to name the variable", err)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Listen != DefaultListen {
		t.Fatalf("Load(empty) = %+v, %v; want defaults", c, err)
	}
}
