package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Defaults.
const (
	DefaultListen   = "127.0.0.1:9090"
	DefaultRegistry = "docker.io"
	// DefaultCacheMaxBytes bounds the content store: rewritten manifests
	// and configs are a few KiB each, so most of it is packed layers,
	// one set per generation.
	DefaultCacheMaxBytes = 10 << 30
)

// Config is the daemon's configuration. Flags override its fields.
type Config struct {
	// Listen is the local handler's address.
	Listen string `yaml:"listen"`
	// Local is the local handler's own settings.
	Local Local `yaml:"local"`
	// DefaultRegistry serves names that have no registry host.
	DefaultRegistry string `yaml:"default_registry"`
	// LayerDir is the directory injected into every image; empty means the
	// built-in default layer.
	LayerDir string `yaml:"layer_dir"`
	// CacheMaxBytes is the size the content store is trimmed to, least
	// recently used blobs first; 0 means DefaultCacheMaxBytes, a negative
	// value no limit.
	CacheMaxBytes int64 `yaml:"cache_max_bytes"`
	// Registries holds per-registry settings, keyed by registry host as
	// written in image names ("quay.io", "docker.io", "127.0.0.1:5000").
	Registries map[string]Registry `yaml:"registries"`
	// Public is the public handler: what --public-listen and the tunnel
	// serve to other machines.
	Public Public `yaml:"public"`
	// TokenTTL is how long a container token lives ("24h"); zero means
	// the token store's default.
	TokenTTL Duration `yaml:"token_ttl"`
	// Tunnel gives the public handler a public name.
	Tunnel Tunnel `yaml:"tunnel"`
	// Upstream bounds the requests to upstream registries.
	Upstream Upstream `yaml:"upstream"`
	// Limits bounds what local clients may ask.
	Limits Limits `yaml:"limits"`
	// Blobs chooses how each handler gets upstream blobs to its clients.
	Blobs Blobs `yaml:"blobs"`
	// Offload uploads the injected layers to an S3-compatible store and
	// redirects public clients there.
	Offload Offload `yaml:"offload"`
}

// Blob modes.
const (
	// BlobsStream streams a blob through the daemon, verified and cached.
	BlobsStream = "stream"
	// BlobsRedirect passes the upstream's redirect (a signed storage URL)
	// on to the client, once the dial policy accepts its target, and
	// streams when there is none.
	BlobsRedirect = "redirect"
)

// Blobs chooses, per handler, BlobsStream or BlobsRedirect.
type Blobs struct {
	// Public is for the public handler's clients with the login and
	// anonymous ones: redirect by default, so that base layers do not
	// cross the developer's uplink and the tunnel.
	Public string `yaml:"public"`
	// Local is for the local handler: stream by default, the fastest on
	// the same machine, and cached for the next pull.
	Local string `yaml:"local"`
}

// Local configures the local handler (on Listen).
type Local struct {
	// Hosts are the other names this machine goes by ("devbox.lan") that
	// local clients may put in the Host header; a port, if given, is
	// ignored. localhost, loopback addresses and Listen's host need no
	// entry. Any other Host is refused, so that a web page whose name
	// resolves to 127.0.0.1 (DNS rebinding) cannot read the local API.
	Hosts []string `yaml:"hosts"`
}

// Tunnel providers.
const (
	TunnelNgrok = "ngrok"
	TunnelOff   = "off"
)

// DefaultAuthtokenEnv is where the ngrok auth token is read from when the
// config names no other variable: the variable ngrok's own tools read.
const DefaultAuthtokenEnv = "NGROK_AUTHTOKEN"

// Tunnel configures the tunnel that serves the public handler.
type Tunnel struct {
	// Provider is ngrok or off; empty means ngrok when an auth token is
	// set, else off.
	Provider string `yaml:"provider"`
	// Authtoken is the ngrok auth token. AuthtokenEnv names the
	// environment variable to read it from instead (NGROK_AUTHTOKEN when
	// empty), so that the secret need not sit in the file.
	Authtoken    string `yaml:"authtoken"`
	AuthtokenEnv string `yaml:"authtoken_env"`
	// Domain is a reserved ngrok domain ("reg.ngrok.app"); empty means
	// the one ngrok assigns.
	Domain string `yaml:"domain"`
}

// Token resolves the auth token: the field, else the environment variable.
func (t Tunnel) Token() string {
	if t.Authtoken != "" {
		return t.Authtoken
	}
	env := t.AuthtokenEnv
	if env == "" {
		env = DefaultAuthtokenEnv
	}
	return os.Getenv(env)
}

// Effective returns the provider that runs: Provider, or by default ngrok
// when an auth token is set and off otherwise. Asking for ngrok without a
// token is an error that says where a token goes.
func (t Tunnel) Effective() (string, error) {
	switch t.Provider {
	case "":
		if t.Token() != "" {
			return TunnelNgrok, nil
		}
		return TunnelOff, nil
	case TunnelOff:
		return TunnelOff, nil
	case TunnelNgrok:
		if t.Token() == "" {
			env := t.AuthtokenEnv
			if env == "" {
				env = DefaultAuthtokenEnv
			}
			return "", fmt.Errorf("the ngrok tunnel needs an auth token: set %s (get one at https://dashboard.ngrok.com), or put tunnel.authtoken in the config, or run with --tunnel off", env)
		}
		return TunnelNgrok, nil
	}
	return "", fmt.Errorf("tunnel provider %q: want ngrok or off", t.Provider)
}

// Duration is a time.Duration written as Go writes it: "90s", "12h".
// Load checks it, so that a bad one is reported with its line.
type Duration string

// Value returns the duration; zero when unset. Load has checked it.
func (d Duration) Value() time.Duration {
	v, _ := time.ParseDuration(string(d))
	return v
}

func (d Duration) check() error {
	if d == "" {
		return nil
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 90s or 12h", string(d))
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", string(d))
	}
	return nil
}

// Login is a user name and the password, given in the file or, so that no
// secret has to sit in it, named by an environment variable or a file.
type Login struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
}

// Registry is one upstream registry's settings.
type Registry struct {
	Login `yaml:",inline"`
	// Insecure allows plain HTTP to a registry that is not on loopback.
	Insecure bool `yaml:"insecure"`
}

// Public configures the public handler.
type Public struct {
	// Listen also serves the public handler on a plain listener, as
	// --public-listen does.
	Listen string `yaml:"listen"`
	// Login is what `docker login PUBLIC_HOST` takes. Without a password
	// the daemon generates one and keeps it in its state directory.
	Login `yaml:",inline"`
	// Anonymous lets clients that did not log in pull public images from
	// AnonymousRegistries, with none of the developer's credentials; nil
	// means true. False leaves the login and container tokens.
	Anonymous *bool `yaml:"anonymous,omitempty"`
	// AnonymousRegistries are the registries anonymous clients may pull
	// from, as written in image names; nil means
	// DefaultAnonymousRegistries(). A registry on a loopback or private
	// address listed here may be reached for them: the developer named it.
	AnonymousRegistries []string `yaml:"anonymous_registries,omitempty"`
}

// DefaultAnonymousRegistries are the well-known public registries.
func DefaultAnonymousRegistries() []string {
	return []string{"docker.io", "quay.io", "ghcr.io", "public.ecr.aws", "registry.k8s.io", "mcr.microsoft.com"}
}

// AnonymousOn reports whether anonymous clients may pull at all.
func (p Public) AnonymousOn() bool { return p.Anonymous == nil || *p.Anonymous }

// AnonymousFrom is the registries anonymous clients may pull from.
func (p Public) AnonymousFrom() []string {
	if p.AnonymousRegistries == nil {
		return DefaultAnonymousRegistries()
	}
	return p.AnonymousRegistries
}

// Default returns the configuration used when there is no file.
func Default() Config {
	return Config{Listen: DefaultListen, DefaultRegistry: DefaultRegistry, CacheMaxBytes: DefaultCacheMaxBytes,
		Blobs: Blobs{Public: BlobsRedirect, Local: BlobsStream}}
}

// Load reads the config file at path over the defaults. A missing file is
// not an error: the defaults run.
func Load(path string) (Config, error) {
	c := Default()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b), yaml.DisallowUnknownField())
	// An empty file decodes to io.EOF, and one of comments only to null:
	// both mean "all defaults", so defaults fill what the file leaves empty.
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config %s:\n%s", path, yaml.FormatError(err, false, true))
	}
	for _, f := range []struct {
		path string
		d    Duration
	}{{"$.token_ttl", c.TokenTTL}, {"$.upstream.timeout", c.Upstream.Timeout},
		{"$.upstream.header_timeout", c.Upstream.HeaderTimeout}, {"$.upstream.stall_timeout", c.Upstream.StallTimeout}} {
		if err := f.d.check(); err != nil {
			return Config{}, fmt.Errorf("config %s:%d: %s: %w", path, line(b, f.path), strings.TrimPrefix(f.path, "$."), err)
		}
	}
	for i, h := range c.Local.Hosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/ ") {
			return Config{}, fmt.Errorf("config %s:%d: local.hosts: %q is not a host name", path, line(b, fmt.Sprintf("$.local.hosts[%d]", i)), h)
		}
	}
	if p := c.Tunnel.Provider; p != "" && p != TunnelNgrok && p != TunnelOff {
		return Config{}, fmt.Errorf("config %s:%d: tunnel.provider: %q is not ngrok or off", path, line(b, "$.tunnel.provider"), p)
	}
	if key, err := c.Offload.check(); err != nil {
		return Config{}, fmt.Errorf("config %s:%d: offload.%s: %w", path, line(b, "$.offload."+key), key, err)
	}
	d := Default()
	for _, f := range []struct {
		path string
		v    *string
		def  string
	}{{"$.blobs.public", &c.Blobs.Public, d.Blobs.Public}, {"$.blobs.local", &c.Blobs.Local, d.Blobs.Local}} {
		switch *f.v {
		case "":
			*f.v = f.def
		case BlobsStream, BlobsRedirect:
		default:
			return Config{}, fmt.Errorf("config %s:%d: %s: %q is not stream or redirect", path, line(b, f.path), strings.TrimPrefix(f.path, "$."), *f.v)
		}
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.DefaultRegistry == "" {
		c.DefaultRegistry = d.DefaultRegistry
	}
	if c.CacheMaxBytes == 0 {
		c.CacheMaxBytes = d.CacheMaxBytes
	}
	return c, nil
}

// line is the line of the YAML path p in b, 0 if not found.
func line(b []byte, p string) int {
	yp, err := yaml.PathString(p)
	if err != nil {
		return 0
	}
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		return 0
	}
	n, err := yp.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// Insecure lists the registries configured for plain HTTP.
func (c Config) Insecure() []string {
	var out []string
	for host, r := range c.Registries {
		if r.Insecure {
			out = append(out, host)
		}
	}
	return out
}

// Secret resolves the password from the field, the environment variable
// or the file, in that order.
func (r Login) Secret() (string, error) {
	switch {
	case r.Password != "":
		return r.Password, nil
	case r.PasswordEnv != "":
		v, ok := os.LookupEnv(r.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("password_env %s is not set", r.PasswordEnv)
		}
		return v, nil
	case r.PasswordFile != "":
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}
