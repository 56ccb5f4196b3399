package config

import (
	"maps"

	"github.com/goccy/go-yaml"
)

// Masked stands for a secret in printed configs.
const Masked = "********"

// Masked returns a copy of c with every secret replaced by Masked: the
// passwords and the tunnel's auth token. Names of variables and files that
// hold secrets are not secrets, and stay.
func (c Config) Masked() Config {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return Masked
	}
	out := c
	out.Registries = maps.Clone(c.Registries)
	for host, r := range out.Registries {
		r.Password = mask(r.Password)
		out.Registries[host] = r
	}
	out.Public.Password = mask(c.Public.Password)
	out.Tunnel.Authtoken = mask(c.Tunnel.Authtoken)
	return out
}

// YAML renders c in the file's format, secrets masked and empty keys
// left out.
func (c Config) YAML() ([]byte, error) {
	return yaml.MarshalWithOptions(c.Masked(), yaml.OmitEmpty())
}
