package daemon

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/public"
	"github.com/tower-reg/tower-reg/daemon/store"
)

// audience is one kind of client and what it may use upstream: whose
// credentials, which addresses, and which part of the store.
type audience struct {
	// name names the audience in the dial policy's refusals.
	name string
	// scope keeps the audience's store links apart: what one audience
	// fetched is not served to another just because it is in the store.
	// The developer's scope is "".
	scope    string
	keychain authn.Keychain
	// private lets the hosts it accepts reach non-public addresses.
	private func(hostport string) bool
	// locations, when not nil, decides in place of private which hosts
	// its clients may be redirected to on non-public addresses: the
	// token audience dials like the developer but is sent where an
	// internet client may go.
	locations func(hostport string) bool
	// blobs is how its upstream blobs reach it: streamed or redirected.
	blobs proxy.BlobMode
	// offload, in redirect mode, sends it to the offload store for the
	// injected layers; nil means none.
	offload proxy.Offload
	// upload, in redirect mode, uploads the upstream blobs it streamed to
	// the offload store (offload.upstream_blobs); nil means none.
	upload proxy.Uploader
	// tokens resolves its container token routes; nil means it has none.
	tokens api.Tokens
}

// stack is what an audience pulls through.
type stack struct {
	up  *proxy.Upstream
	rw  *proxy.Rewriting
	reg *api.Registry
}

// stacks builds the stack of each audience over one store and layer set.
type stacks struct {
	cfg       config.Config
	st        *store.Store
	layers    proxy.Layers
	bus       *event.Bus
	log       *slog.Logger
	metrics   func(http.RoundTripper) http.RoundTripper
	redirects http.RoundTripper // shared by all: it reaches public addresses only
	policies  []*dialpolicy.Policy
}

func newStacks(cfg config.Config, st *store.Store, layers proxy.Layers, bus *event.Bus, log *slog.Logger,
	metrics func(http.RoundTripper) http.RoundTripper) *stacks {
	s := &stacks{cfg: cfg, st: st, layers: layers, bus: bus, log: log, metrics: metrics}
	// An operation redirected away from a public registry may reach
	// public addresses only, whoever asked.
	p := dialpolicy.New("redirected", nil)
	s.policies = append(s.policies, p)
	s.redirects = metrics(upstreamOptions(cfg, p, log).Transport)
	return s
}

// upstream is the part of an audience's stack that fetches and rewrites.
type upstream struct {
	up    *proxy.Upstream
	rw    *proxy.Rewriting
	stall time.Duration // the client-side bound: the upstream's own
}

// newUpstream returns a's upstream and rewriting. Each audience has its
// own transport, and so its own connections: a connection that one
// audience's policy let through is never reused by another.
func (s *stacks) newUpstream(a audience) upstream {
	p := dialpolicy.New(a.name, a.private)
	s.policies = append(s.policies, p)
	o := upstreamOptions(s.cfg, p, s.log)
	o.Transport = s.metrics(o.Transport)
	o.PublicRedirects = s.redirects
	o.Keychain = a.keychain
	if a.locations != nil {
		lp := dialpolicy.New(a.name, a.locations)
		s.policies = append(s.policies, lp)
		o.Locations = lp
	}
	up := proxy.NewUpstream(o)
	return upstream{up: up, rw: proxy.NewScopedRewriting(up, s.st, s.layers, a.scope), stall: o.StallTimeout}
}

// withRegistry completes u into a's stack: its blob source, with a's blob
// mode, and its registry handler.
func (s *stacks) withRegistry(a audience, u upstream) stack {
	blobs := proxy.NewBlobs(u.rw, u.up, a.blobs, s.log, proxy.WithOffload(a.offload), proxy.WithUploader(a.upload))
	opts := []api.RegistryOption{api.RegistryClientStall(u.stall)}
	if a.tokens != nil {
		opts = append(opts, api.RegistryTokens(a.tokens))
	}
	reg := api.NewRegistry(u.rw, blobs, u.up, s.cfg.DefaultRegistry, s.bus, s.log, opts...)
	return stack{up: u.up, rw: u.rw, reg: reg}
}

// newAudience returns the stack of a. The developer's is built in its two
// steps instead (newUpstream, then withRegistry): the token service
// resolves images through the developer's rewriting, and the developer's
// registry serves that service's tokens.
func (s *stacks) newAudience(a audience) stack { return s.withRegistry(a, s.newUpstream(a)) }

// publicStacks are the public handler's audiences.
type publicStacks struct {
	loggedIn, anonymous, token stack
}

// buildPublic builds the public handler's audiences, all with the public
// blob mode pub. Clients with the login get the developer's credentials,
// and private addresses only on the registries the developer named;
// anonymous clients get no credentials, and private addresses only on
// the registries listed for them; container tokens are the token
// audience, their routes resolved by tokens. The local handler's token
// routes are the developer's stack's, and keep blobs.local.
func (s *stacks) buildPublic(kc authn.Keychain, anon *api.Anonymous, pub publicBlobs, tokens api.Tokens) publicStacks {
	named := namedHosts(s.cfg, anon)
	return publicStacks{
		loggedIn: s.newAudience(pub.of(audience{name: "logged-in", scope: "login", keychain: kc,
			private: dialpolicy.Named(named...)})),
		anonymous: s.newAudience(pub.of(audience{name: "anonymous", scope: "anonymous", keychain: authn.NewMultiKeychain(),
			private: dialpolicy.Named(anon.Hosts()...)})),
		token: s.newAudience(tokenAudience(kc, named, pub, tokens)),
	}
}

// tokenAudience is who pulls through a container token on the public
// handler: an internet client that holds a token the developer issued.
//
// It is an audience of its own rather than the developer's stack with
// another blob mode, because two things differ from the local handler's
// token routes and both live in an audience: the blob mode (the public
// one, so that no base layer crosses the uplink) and where a redirect may
// send the client. What it shares with the developer is what the token
// stands for: their keychain, their store scope (the token's image was
// rewritten and its layers linked there when the token was issued), and
// dials to the token's registry wherever it is, since the developer named
// the image. Its redirects are checked like a logged-in client's: a
// private target only on a host the developer named, or the token's
// registry itself (see proxy.Upstream.CheckLocation).
func tokenAudience(kc authn.Keychain, named []string, pub publicBlobs, tokens api.Tokens) audience {
	return pub.of(audience{name: "token", keychain: kc, private: dialpolicy.AnyHost,
		locations: dialpolicy.Named(named...), tokens: tokens})
}

// publicBlobs is how the public handler's audiences get their blobs: the
// public blob mode, the offload store, and whether the upstream blobs that
// stream are uploaded there.
type publicBlobs struct {
	mode    proxy.BlobMode
	offload proxy.Offload
	upload  proxy.Uploader // nil: offload.upstream_blobs is off
}

func (p publicBlobs) of(a audience) audience {
	a.blobs, a.offload, a.upload = p.mode, p.offload, p.upload
	return a
}

// namedHosts are the hosts of the registries the developer named: the
// default registry, the config's registries and anonymous registries, and
// the registries of the Docker config (~/.docker/config.json). A client
// with the public login may reach those on a private address, and no
// other: the login lends the developer's registries, not their network.
func namedHosts(cfg config.Config, anon *api.Anonymous) []string {
	hosts := anon.Hosts()
	add := func(reg string) {
		// Docker config keys may be URLs: https://index.docker.io/v1/.
		reg = strings.TrimPrefix(strings.TrimPrefix(reg, "https://"), "http://")
		reg, _, _ = strings.Cut(reg, "/")
		r, err := name.NewRegistry(reg)
		if err != nil {
			return
		}
		hosts = append(hosts, proxy.Repo{Registry: r.RegistryStr()}.Host())
	}
	add(cfg.DefaultRegistry)
	for reg := range cfg.Registries {
		add(reg)
	}
	if dc, err := dockerconfig.Load(dockerconfig.Dir()); err == nil {
		for reg := range dc.AuthConfigs {
			add(reg)
		}
		for reg := range dc.CredentialHelpers {
			add(reg)
		}
	}
	return hosts
}

// checkAnonymous resolves the anonymous registries of the config.
func checkAnonymous(cfg config.Config) (*api.Anonymous, error) {
	a, err := api.NewAnonymous(cfg.DefaultRegistry, cfg.Public.AnonymousFrom())
	if err != nil {
		return nil, fmt.Errorf("public.anonymous_registries: %w", err)
	}
	return a, nil
}

// publicChallenge has next answer an upstream's 401 with the public
// handler's challenge, not the local handler's Basic one: the client of the
// public face is sent on to the daemon's own login.
func publicChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(api.WithChallenge(r.Context(), public.Challenge(r))))
	})
}
