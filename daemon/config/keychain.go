package config

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Keychain resolves the config's credentials for each registry, and nothing
// for registries it does not list: credentials only ever go to their own
// registry.
type Keychain struct {
	creds map[string]authn.AuthConfig // by canonical registry name
}

// Keychain builds the keychain of the config's registries. Secrets from
// environment variables and files are read once, here.
func (c Config) Keychain() (*Keychain, error) {
	k := &Keychain{creds: map[string]authn.AuthConfig{}}
	for host, r := range c.Registries {
		if r.Username == "" {
			continue
		}
		secret, err := r.Secret()
		if err != nil {
			return nil, fmt.Errorf("config: registries.%s: %w", host, err)
		}
		reg, err := name.NewRegistry(host)
		if err != nil {
			return nil, fmt.Errorf("config: registries.%s: %w", host, err)
		}
		k.creds[reg.RegistryStr()] = authn.AuthConfig{Username: r.Username, Password: secret}
	}
	return k, nil
}

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if c, ok := k.creds[target.RegistryStr()]; ok {
		return authn.FromConfig(c), nil
	}
	return authn.Anonymous, nil
}

var _ authn.Keychain = (*Keychain)(nil)
