package api

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// IsTokenPath reports whether path is a container token's route,
// /v2/wt/<token>/<repository>/...: the one decision of what a token route
// is, for the registry and for the public handler that lets token routes
// through without a login.
func IsTokenPath(path string) bool { return tokenRoute(parseRoute(path)) }

// Anonymous decides what the anonymous clients of the public handler may
// ask for: registry routes of the registries on its list, nothing that
// names another.
type Anonymous struct {
	defaultRegistry string
	registries      map[string]bool // canonical registry names
	hosts           map[string]bool // as written: "host" or "host:port"
}

// NewAnonymous returns the anonymous access of the registries listed, as
// written in image names ("docker.io", "127.0.0.1:5000").
func NewAnonymous(defaultRegistry string, registries []string) (*Anonymous, error) {
	a := &Anonymous{defaultRegistry: defaultRegistry, registries: map[string]bool{}, hosts: map[string]bool{}}
	for _, r := range registries {
		reg, err := name.NewRegistry(r, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("anonymous registry %q: %w", r, err)
		}
		a.registries[reg.RegistryStr()] = true
		a.hosts[proxy.Repo{Registry: reg.RegistryStr()}.Host()] = true
	}
	return a, nil
}

// Allow returns nil when an anonymous client may make a request for path,
// else why not. The base route and paths that are no registry route name
// no upstream, and are answered without one.
func (a *Anonymous) Allow(path string) error {
	rt := parseRoute(path)
	if rt.kind == kindBase || rt.kind == kindUnknown || tokenRoute(rt) {
		return nil
	}
	repo, err := rt.repo(a.defaultRegistry)
	if err != nil {
		return nil // NAME_INVALID, answered without an upstream
	}
	if !a.registries[repo.Registry] {
		return fmt.Errorf("%s is not one of the public registries this tower-reg serves without a login", strings.TrimPrefix(repo.Registry, "index."))
	}
	return nil
}

// Hosts are the hosts the registries on the list are reached at, which
// anonymous clients may reach on a private address: the developer named
// them.
func (a *Anonymous) Hosts() []string {
	out := make([]string, 0, len(a.hosts))
	for h := range a.hosts {
		out = append(out, h)
	}
	return out
}
