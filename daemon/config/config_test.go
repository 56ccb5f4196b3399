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
	tests := []loadCase{
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
		{name: "anonymous by default", yaml: "", want: func(t *testing.T, c Config) {
			if !c.Public.AnonymousOn() || strings.Join(c.Public.AnonymousFrom(), ",") != "docker.io,quay.io,ghcr.io,public.ecr.aws,registry.k8s.io,mcr.microsoft.com" {
				t.Fatalf("anonymous %v from %v", c.Public.AnonymousOn(), c.Public.AnonymousFrom())
			}
		}},
		{name: "anonymous off, own list", yaml: "public:\n  anonymous: false\n  anonymous_registries: [quay.io, 10.0.0.5:5000]\n", want: func(t *testing.T, c Config) {
			if c.Public.AnonymousOn() || strings.Join(c.Public.AnonymousFrom(), ",") != "quay.io,10.0.0.5:5000" {
				t.Fatalf("anonymous %v from %v", c.Public.AnonymousOn(), c.Public.AnonymousFrom())
			}
		}},
		{name: "anonymous from no registry", yaml: "public:\n  anonymous_registries: []\n", want: func(t *testing.T, c Config) {
			if got := c.Public.AnonymousFrom(); len(got) != 0 {
				t.Fatalf("an empty list became %v", got)
			}
		}},
		{name: "local hosts", yaml: "local:\n  hosts: [devbox.lan, \"devbox:9090\"]\n", want: func(t *testing.T, c Config) {
			if len(c.Local.Hosts) != 2 || c.Local.Hosts[0] != "devbox.lan" || c.Local.Hosts[1] != "devbox:9090" {
				t.Fatalf("local.hosts = %q", c.Local.Hosts)
			}
		}},
		{name: "bad local host", yaml: "local:\n  hosts:\n    - devbox.lan\n    - http://devbox/\n", wantErr: `config.yml:4: local.hosts: "http://devbox/" is not a host name`},
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
		{name: "tunnel", yaml: "tunnel:\n  provider: ngrok\n  authtoken_env: TR_TEST_PW\n  domain: reg.example.ngrok.app\n", want: func(t *testing.T, c Config) {
			p, err := c.Tunnel.Effective()
			if p != TunnelNgrok || err != nil || c.Tunnel.Token() != "from-env" || c.Tunnel.Domain != "reg.example.ngrok.app" {
				t.Fatalf("tunnel = %+v: %q, %v, token %q", c.Tunnel, p, err, c.Tunnel.Token())
			}
		}},
		{name: "bad tunnel provider", yaml: "listen: 127.0.0.1:1\ntunnel:\n  provider: cloudflare\n", wantErr: `config.yml:3: tunnel.provider: "cloudflare" is not ngrok or off`},
		{name: "blobs default", yaml: "listen: 127.0.0.1:1\n", want: func(t *testing.T, c Config) {
			if c.Blobs.Public != BlobsRedirect || c.Blobs.Local != BlobsStream {
				t.Fatalf("blobs = %+v, want public redirect, local stream", c.Blobs)
			}
		}},
		{name: "blobs set", yaml: "blobs:\n  public: stream\n  local: redirect\n", want: func(t *testing.T, c Config) {
			if c.Blobs.Public != BlobsStream || c.Blobs.Local != BlobsRedirect {
				t.Fatalf("blobs = %+v, want public stream, local redirect", c.Blobs)
			}
		}},
		{name: "blobs one set", yaml: "blobs:\n  public: stream\n", want: func(t *testing.T, c Config) {
			if c.Blobs.Public != BlobsStream || c.Blobs.Local != BlobsStream {
				t.Fatalf("blobs = %+v, want both stream", c.Blobs)
			}
		}},
		{name: "bad blobs mode", yaml: "listen: 127.0.0.1:1\nblobs:\n  local: offload\n", wantErr: `config.yml:3: blobs.local: "offload" is not stream or redirect`},
		{name: "unknown key", yaml: "listen: x\nlisten_addr: y\n", wantErr: "listen_addr"},
		{name: "malformed", yaml: "listen: [\n", wantErr: "config"},
	}
	runLoadCases(t, tests)
}

// loadCase is a config file (none when yaml is empty) and what Load must
// make of it: want checks a success, wantErr is part of the error.
type loadCase struct {
	name    string
	yaml    string
	want    func(t *testing.T, c Config)
	wantErr string
}

func runLoadCases(t *testing.T, tests []loadCase) {
	t.Helper()
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

// TestTunnelEffective: the provider runs as asked, the default follows the
// auth token, and ngrok without a token says where one goes.
func TestTunnelEffective(t *testing.T) {
	tests := []struct {
		name    string
		env     string // NGROK_AUTHTOKEN
		t       Tunnel
		want    string
		wantErr string
	}{
		{name: "default without a token", want: TunnelOff},
		{name: "default with NGROK_AUTHTOKEN", env: "tok", want: TunnelNgrok},
		{name: "default with a token in the file", t: Tunnel{Authtoken: "tok"}, want: TunnelNgrok},
		{name: "default with an unset authtoken_env", env: "tok", t: Tunnel{AuthtokenEnv: "TR_TEST_UNSET_VAR"}, want: TunnelOff},
		{name: "off with a token", env: "tok", t: Tunnel{Provider: TunnelOff}, want: TunnelOff},
		{name: "ngrok with a token", env: "tok", t: Tunnel{Provider: TunnelNgrok}, want: TunnelNgrok},
		{name: "ngrok without a token", t: Tunnel{Provider: TunnelNgrok}, wantErr: "needs an auth token: set NGROK_AUTHTOKEN"},
		{name: "ngrok with an unset authtoken_env", env: "tok", t: Tunnel{Provider: TunnelNgrok, AuthtokenEnv: "TR_TEST_UNSET_VAR"}, wantErr: "set TR_TEST_UNSET_VAR"},
		{name: "unknown provider", t: Tunnel{Provider: "frp"}, wantErr: `"frp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(DefaultAuthtokenEnv, tt.env)
			got, err := tt.t.Effective()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Effective() = %q, %v; want an error mentioning %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Effective() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestYAMLMasksSecrets: every secret is masked, names of where secrets
// live are shown, and the caller's config is left as it was.
func TestYAMLMasksSecrets(t *testing.T) {
	c := Default()
	c.Registries = map[string]Registry{
		"quay.io":        {Login: Login{Username: "qu", Password: "quay-s3cret"}},
		"127.0.0.1:5000": {Login: Login{Username: "lu", PasswordEnv: "LOCAL_PW"}},
		"ghcr.io":        {Login: Login{Username: "gu", PasswordFile: "/run/secrets/ghcr"}},
	}
	c.Public.Username, c.Public.Password = "towerreg", "public-s3cret"
	c.Tunnel = Tunnel{Provider: TunnelNgrok, Authtoken: "2abcNgrokTok3n", Domain: "reg.ngrok.app"}
	b, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"quay-s3cret", "public-s3cret", "2abcNgrokTok3n"} {
		if strings.Contains(out, secret) {
			t.Errorf("the output holds the secret %q:\n%s", secret, out)
		}
	}
	for _, shown := range []string{"password: \"" + Masked, "authtoken: \"" + Masked, "password_env: LOCAL_PW", "password_file: /run/secrets/ghcr", "username: qu", "domain: reg.ngrok.app"} {
		if !strings.Contains(out, shown) {
			t.Errorf("the output lacks %q:\n%s", shown, out)
		}
	}
	if c.Registries["quay.io"].Password != "quay-s3cret" || c.Tunnel.Authtoken != "2abcNgrokTok3n" {
		t.Error("YAML changed the config it was given")
	}
	// What is printed reads back as a config.
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("the printed config does not load: %v", err)
	}
}
