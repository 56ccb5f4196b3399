package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/singleflight"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

// MaxManifestSize is the largest manifest the proxy reads: the limit the OCI
// distribution spec recommends registries enforce.
const MaxManifestSize = 4 << 20

// maxConfigSize bounds an image config read into memory for the rewrite.
// Configs are JSON documents of a few KiB; anything near this is hostile.
const maxConfigSize = 16 << 20

// ManifestTypes are the media types the proxy asks upstream for, in order of
// preference. Schema1 is left out on purpose: it cannot carry the layer.
var ManifestTypes = []types.MediaType{
	types.OCIImageIndex,
	types.DockerManifestList,
	types.OCIManifestSchema1,
	types.DockerManifestSchema2,
}

// ErrUnavailable marks an upstream that could not be reached or answered
// with a server error.
var ErrUnavailable = errors.New("upstream unavailable")

// Manifest is a manifest with what is needed to serve it.
type Manifest struct {
	Bytes     []byte
	MediaType types.MediaType
	Digest    v1.Hash
}

// Options configures an Upstream.
type Options struct {
	// Keychain finds credentials per registry. Nil means anonymous.
	Keychain authn.Keychain
	// Insecure lists registry hosts reached over plain HTTP although they
	// are not on loopback.
	Insecure []string
	// Transport is the base transport; nil means a tuned clone of
	// http.DefaultTransport. Tests pass their own.
	Transport http.RoundTripper
	// Backoff for retried GETs and HEADs; zero means ggcr's default.
	Backoff transport.Backoff
	Log     *slog.Logger
	// Timeout, HeaderTimeout, StallTimeout and MaxConnsPerHost bound the
	// upstream requests (see limits.go); zero means the default.
	// HeaderTimeout and MaxConnsPerHost only apply when Transport is nil.
	Timeout         time.Duration
	HeaderTimeout   time.Duration
	StallTimeout    time.Duration
	MaxConnsPerHost int
	// Policy decides the addresses NewTransport may dial; nil means the
	// developer's: anything but the daemon's own listeners, which the
	// caller names with SetOwn.
	Policy *dialpolicy.Policy
	// Locations decides, in place of Policy, where CheckLocation may send
	// a client: an audience whose upstreams may be anywhere (a container
	// token's image, named by the developer) may still send an internet
	// client to a private address only where the developer said so. Nil
	// means Policy.
	Locations *dialpolicy.Policy
	// PublicRedirects carries the hops of an operation redirected away
	// from a registry on a public address; nil means a transport of its
	// own that dials public addresses only.
	PublicRedirects http.RoundTripper
}

// Upstream talks to upstream registries.
type Upstream struct {
	keychain authn.Keychain
	insecure map[string]bool
	base     http.RoundTripper
	log      *slog.Logger
	timeout  time.Duration
	stall    time.Duration
	// policy is the audience's dial policy, which CheckLocation applies to
	// the redirects passed on to clients.
	policy *dialpolicy.Policy
	// locations is the policy CheckLocation applies: Options.Locations.
	locations *dialpolicy.Policy

	mu     sync.Mutex
	repos  map[string]http.RoundTripper // by Repo.String()
	dialog singleflight.Group
}

// NewUpstream returns an Upstream.
func NewUpstream(o Options) *Upstream {
	kc := o.Keychain
	if kc == nil {
		kc = authn.NewMultiKeychain() // resolves to anonymous
	}
	o = o.WithDefaults()
	base := o.Transport
	if base == nil {
		base = NewTransport(o)
	}
	ins := map[string]bool{}
	for _, h := range o.Insecure {
		ins[h] = true
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pol := o.Policy
	if pol == nil {
		pol = dialpolicy.New("local", dialpolicy.AnyHost)
	}
	u := &Upstream{keychain: kc, insecure: ins, log: log, repos: map[string]http.RoundTripper{},
		timeout: o.Timeout, stall: o.StallTimeout, policy: pol, locations: o.Locations}
	if u.locations == nil {
		u.locations = pol
	}
	retry := []transport.Option{transport.WithRetryStatusCodes(
		http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		transport.WithRetryPredicate(retryable)}
	if o.Backoff.Steps > 0 {
		retry = append(retry, transport.WithRetryBackoff(o.Backoff))
	}
	pub := o.PublicRedirects
	if pub == nil {
		po := o
		po.Policy = dialpolicy.New("redirected", nil)
		pub = NewTransport(po)
	}
	base = hopRouter{next: base, public: pub}
	u.base = realmAlias{inner: transport.NewRetry(&schemeGuard{inner: base, plain: u.plainHTTP}, retry...)}
	return u
}

// plainHTTP reports whether host may be reached over plain HTTP.
func (u *Upstream) plainHTTP(host string) bool {
	return dialpolicy.Loopback(host) || u.insecure[host]
}

// schemeGuard refuses plain HTTP to registries that must use TLS. ggcr would
// also fall back to HTTP for private address ranges; tower-reg's rule is
// loopback and configured insecure registries only. Nor may an operation on
// a registry reached over TLS go on over plain HTTP: a token realm or a
// redirect that downgrades would hand the credentials, or the blob, to
// anyone on the path.
type schemeGuard struct {
	inner http.RoundTripper
	plain func(host string) bool
}

func (g *schemeGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		if op := operationOf(r.Context()); op != nil && op.https {
			return nil, fmt.Errorf("%w: plain HTTP to %s in an operation on a registry reached over https", dialpolicy.ErrRefused, r.URL.Host)
		}
		if !g.plain(r.URL.Host) {
			return nil, fmt.Errorf("%w: plain HTTP to %s, which is not on loopback and not configured insecure", dialpolicy.ErrRefused, r.URL.Host)
		}
	}
	return g.inner.RoundTrip(r)
}

// dialTimeout bounds the ping and token exchange that open a repository.
const dialTimeout = 30 * time.Second

// transport returns the authenticated transport for repo, creating it once.
// ggcr's transport does the ping and the token exchange, and refreshes the
// token on a 401; keeping it per repository means one ping and one token per
// repository, not per request, until the registry refuses it (see do).
func (u *Upstream) transport(ctx context.Context, repo Repo) (http.RoundTripper, error) {
	key := repo.String()
	u.mu.Lock()
	rt, ok := u.repos[key]
	u.mu.Unlock()
	if ok {
		return rt, nil
	}
	return shared(ctx, &u.dialog, key, min(dialTimeout, u.timeout), func(ctx context.Context) (http.RoundTripper, error) {
		rt, err := u.dial(ctx, repo)
		if err != nil {
			return nil, err
		}
		u.mu.Lock()
		u.repos[key] = rt
		u.mu.Unlock()
		return rt, nil
	})
}

func (u *Upstream) dial(ctx context.Context, repo Repo) (http.RoundTripper, error) {
	var opts []name.Option
	if u.plainHTTP(repo.Host()) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(repo.Host(), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: registry %q: %v", ErrNameInvalid, repo.Host(), err)
	}
	// Credentials are looked up by the canonical registry name, so Docker
	// Hub credentials stored for docker.io reach registry-1.docker.io.
	credReg, err := name.NewRegistry(repo.Registry, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: registry %q: %v", ErrNameInvalid, repo.Registry, err)
	}
	auth, err := u.keychain.Resolve(credReg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.Registry, err)
	}
	scope := reg.Repo(repo.Path).Scope(transport.PullScope)
	rt, err := transport.NewWithContext(ctx, reg, auth, u.base, []string{scope})
	if err != nil {
		return nil, upstreamFailure(repo, err)
	}
	return rt, nil
}

// forget drops repo's transport if it is still rt, so that the next request
// dials again and resolves credentials anew: after a `docker login`, or a
// password changed in the config, a refused transport must not be kept.
func (u *Upstream) forget(repo Repo, rt http.RoundTripper) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.repos[repo.String()] == rt {
		delete(u.repos, repo.String())
	}
}

// upstreamFailure wraps errors that are not the registry's own answers as
// ErrUnavailable, so the API can tell "the registry said no" from "the
// registry could not be asked". It is the step below api's classify: it
// turns the transport's errors into the proxy's sentinels, which api's
// table then turns into statuses, so api never sees a transport error
// that is not a registry's answer.
func upstreamFailure(repo Repo, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode < 500 {
		err = fmt.Errorf("%s: %w", repo.Registry, registryError{err, te})
		if wantsCredentials(err) {
			return &CredentialsError{Registry: repo.Registry, Err: err}
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, dialpolicy.ErrRefused) {
		// The dial policy said no (to the registry, a redirect or the token
		// realm): no retry will change that, so it is not an outage.
		return fmt.Errorf("%s: %w", repo.Registry, err)
	}
	if realmRefused(err) {
		return fmt.Errorf("%w: %s: %w", dialpolicy.ErrRefused, repo.Registry, err)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && !errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, repo.Registry, err)
}

func (u *Upstream) url(repo Repo, kind, ref string) string {
	scheme := "https"
	if u.plainHTTP(repo.Host()) {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", scheme, repo.Host(), repo.Path, kind, ref)
}

// do sends one request to repo's registry and checks that the status is one
// of ok; other answers become *transport.Error (the registry's own error
// codes) or ErrUnavailable.
func (u *Upstream) do(ctx context.Context, repo Repo, method, url string, hdr http.Header, ok ...int) (*http.Response, error) {
	return u.doBounded(ctx, repo, method, url, hdr, false, ok...)
}

// doBounded is do under the upstream timeout, which covers the body too
// unless stream is set: a streamed blob's body is then watched for stalls
// instead. The bound is released when the body is closed.
func (u *Upstream) doBounded(ctx context.Context, repo Repo, method, url string, hdr http.Header, stream bool, ok ...int) (*http.Response, error) {
	what := method + " " + url
	ctx = u.withOperation(ctx, repo.Host())
	b := newBound(ctx, u.timeout, what)
	rt, err := u.transport(b.ctx, repo)
	if err != nil {
		b.release()
		return nil, b.err(err)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, url, nil)
	if err != nil {
		b.release()
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: rt, CheckRedirect: checkRedirect}).Do(req)
	if err != nil {
		b.release()
		return nil, upstreamFailure(repo, b.err(err))
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		b.release()
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			u.forget(repo, rt)
		}
		return nil, withRetryAfter(resp, upstreamFailure(repo, err), time.Now())
	}
	if stream {
		u.watchStall(resp, b, what)
	} else {
		resp.Body = &boundBody{ReadCloser: resp.Body, b: b}
	}
	return resp, nil
}
