package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/cachegc"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/public"
	"github.com/tower-reg/tower-reg/daemon/reload"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// Version is the daemon's version, set by the linker for releases.
var Version = "dev"

// Options are what the daemon is built from.
type Options struct {
	Config config.Config
	// CacheDir holds the content store.
	CacheDir string
	// Layer is the layer directory's contents; LayerSource names it in
	// logs and events ("default" or a path).
	Layer       fs.FS
	LayerSource string
	// LayerDir is the directory Layer was opened from, if it was: Serve
	// then watches it and starts a new generation when it changes. Layer
	// defaults to os.DirFS(LayerDir).
	LayerDir string
	// Keychain supplies upstream credentials; nil means the config's
	// registries, then the Docker config (~/.docker/config.json).
	Keychain authn.Keychain
	Log      *slog.Logger
	Bus      *event.Bus
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// once the daemon is asked to stop; zero means 5 s.
	ShutdownTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sent no request for
	// that long; zero means 90 s.
	IdleTimeout time.Duration
	// StateDir keeps what must outlive a restart: the generated public
	// login, the container tokens.
	StateDir string
	// Tunnel serves the public handler to the internet; nil means none.
	// cmd/ builds the one Config.Tunnel asks for; the daemon does not,
	// so that no test opens a tunnel because NGROK_AUTHTOKEN is set.
	Tunnel Tunnel
}

// Daemon is a running towerreg-dev.
type Daemon struct {
	cfg         config.Config
	shutdown    time.Duration
	idle        time.Duration
	layerSource string
	started     time.Time
	addr        atomic.Value // string: the address Serve listens on
	counts      *counters
	log         *slog.Logger
	bus         *event.Bus
	handler     http.Handler
	public      http.Handler
	publicUser  string
	publicFile  string // where the generated public password is, if it is
	layers      *reload.Reloader
	offload     *offloader // nil: no offload store
	gc          *cachegc.GC
	tokens      *token.Service
	tokenStore  *token.Store
	registries  []*api.Registry
	tunnel      Tunnel // nil: off
	tun         tunnelState
	publicAddrs []string // what Serve serves the public handler on, besides the tunnel
	// policies decide the upstream dials of each audience; Serve names
	// its listeners to them, which no upstream may be.
	policies []*dialpolicy.Policy
}

const defaultShutdownTimeout = 5 * time.Second

// defaultIdleTimeout is how long a keep-alive connection may wait for its
// next request. Docker and containerd reuse theirs within seconds; an
// idle one held longer only holds a file descriptor, and without a bound
// a client could hold them forever.
const defaultIdleTimeout = 90 * time.Second

// New builds a daemon: it opens the store and packs the layer, so a broken
// layer directory or cache fails here, before anything listens.
func New(ctx context.Context, o Options) (*Daemon, error) {
	o = o.withDefaults()
	// Every short name resolves against the default registry: a bad one
	// would fail each pull, so the daemon does not start with it.
	if _, err := proxy.ParseRepo("library/busybox", o.Config.DefaultRegistry); err != nil {
		return nil, fmt.Errorf("default_registry %q: %w", o.Config.DefaultRegistry, err)
	}
	st, err := store.Open(filepath.Join(o.CacheDir, "store"))
	if err != nil {
		return nil, err
	}
	off, err := newOffloader(ctx, o, st)
	if err != nil {
		return nil, err
	}
	// Each new generation is the moment the store grows by a layer set,
	// and the offload store's layers are due.
	swapped := func(ctx context.Context, g proxy.Generation) {
		cachegc.Collect(ctx, st, o.Config.CacheMaxBytes, g, o.Log)
		off.generation(g)
	}
	layers, err := reload.New(ctx, reload.Options{Store: st, Layer: o.Layer, Source: o.LayerSource, Dir: o.LayerDir,
		Bus: o.Bus, Log: o.Log, AfterSwap: swapped})
	if err != nil {
		return nil, err
	}
	kc, err := keychain(o)
	if err != nil {
		return nil, err
	}
	met := newMetrics()
	o.Bus.Observe(met.observe)
	anon, err := checkAnonymous(o.Config)
	if err != nil {
		return nil, err
	}
	gc := cachegc.New(ctx, st, layers, o.Config.CacheMaxBytes, o.Log)
	// Set after the store is built, the one way round a true cycle: the
	// GC trims the store, and the store's growth starts the GC.
	st.OnWrite(gc.Grew)
	ss := newStacks(o.Config, st, layers, o.Bus, o.Log, met.transport)
	d := &Daemon{cfg: o.Config, shutdown: o.ShutdownTimeout, idle: o.IdleTimeout, log: o.Log, bus: o.Bus, layers: layers, offload: off,
		layerSource: o.LayerSource, started: time.Now(), counts: &counters{}, tunnel: o.Tunnel, gc: gc}
	o.Bus.Observe(d.counts.add)

	// The developer (the local handler, and its container token routes)
	// reaches any address but the daemon's own listeners, with their
	// credentials. Their stack is built in two steps, around the token
	// service that resolves through it and that its registry serves.
	devAudience := audience{name: "local", keychain: kc, private: dialpolicy.AnyHost,
		blobs: proxy.BlobMode(o.Config.Blobs.Local)}
	devUp := ss.newUpstream(devAudience)
	if d.tokenStore, d.tokens, err = openTokens(ctx, o, st, devUp.rw, layers, off, d.tokenHost); err != nil {
		return nil, err
	}
	// The first GC runs once the live tokens pinned their blobs and
	// generation records: before, it could collect them.
	swapped(ctx, layers.Current())
	devAudience.tokens = d.tokens
	dev := ss.withRegistry(devAudience, devUp)
	admin := api.NewAdmin(dev.up, o.Bus, d.Status, d.Repack, o.Log,
		api.AdminTokens(d.tokens), api.AdminTokenRate(o.Config.Limits.TokenRequestsPerMinute))
	// The --listen host and the machine's configured names, besides
	// localhost and loopback addresses: any other Host is a rebound name.
	hosts := append([]string{o.Config.Listen}, o.Config.Local.Hosts...)
	d.handler = api.AllowHosts(hosts, api.LimitURL(localHandler(dev.reg, admin, met.handler())))

	// The public handler's audiences (see buildPublic): each sees only
	// what was linked for it.
	login, file, err := publicLogin(o.Config.Public, o.StateDir)
	if err != nil {
		return nil, err
	}
	pub := publicBlobs{mode: proxy.BlobMode(o.Config.Blobs.Public), offload: d.Offload()}
	if off != nil && o.Config.Offload.UpstreamBlobs {
		pub.upload = off
	}
	ps := ss.buildPublic(kc, anon, pub, d.tokens)
	d.registries = []*api.Registry{dev.reg, ps.loggedIn.reg, ps.anonymous.reg, ps.token.reg}
	d.policies = ss.policies
	d.public = publicHandler(ps, login, anon, o)
	if login.Password != "" {
		d.publicUser, d.publicFile = login.Username, file
	}
	return d, nil
}

// The token service is what the registry and admin handlers consume.
var _ api.Tokens = (*token.Service)(nil)

// withDefaults fills in what o leaves to the daemon.
func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Bus == nil {
		o.Bus = event.NewBus(nil)
	}
	if o.Layer == nil && o.LayerDir != "" {
		o.Layer = os.DirFS(o.LayerDir)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = defaultShutdownTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	return o
}

// keychain is o's, or else the config's registries, then the Docker
// config's.
func keychain(o Options) (authn.Keychain, error) {
	if o.Keychain != nil {
		return o.Keychain, nil
	}
	ckc, err := o.Config.Keychain()
	if err != nil {
		return nil, err
	}
	return authn.NewMultiKeychain(ckc, authn.DefaultKeychain), nil
}

// openTokens opens the token store under the state directory and starts
// the token service over it, resolving images through rw.
func openTokens(ctx context.Context, o Options, st *store.Store, rw token.Resolver, layers proxy.Layers,
	off *offloader, host func() string) (*token.Store, *token.Service, error) {
	stateDir := o.StateDir
	if stateDir == "" {
		stateDir = filepath.Join(o.CacheDir, "state")
	}
	ts, err := token.Open(ctx, filepath.Join(stateDir, "tokens"), token.Options{Now: o.Bus.Now, Log: o.Log})
	if err != nil {
		return nil, nil, err
	}
	var upload proxy.Uploader
	if off != nil {
		upload = off
	}
	return ts, token.NewService(token.ServiceOptions{
		Store: ts, Blobs: st, Resolver: rw, Layers: layers, Fetcher: fetch.New(fetch.Options{}),
		TTL: o.Config.TokenTTL.Value(), DefaultRegistry: o.Config.DefaultRegistry, Host: host,
		Bus: o.Bus, Log: o.Log, Upload: upload,
	}), nil
}

// publicHandler is what the tunnel and --public-listen serve: the public
// audiences' registries behind the public login.
func publicHandler(ps publicStacks, login public.Credential, anon *api.Anonymous, o Options) http.Handler {
	po := public.Options{
		Full:       publicChallenge(ps.token.reg),
		LoggedIn:   publicChallenge(ps.loggedIn.reg),
		Anonymous:  publicChallenge(ps.anonymous.reg),
		Login:      login,
		TokenRoute: api.IsTokenPath,
		Log:        o.Log,
	}
	if o.Config.Public.AnonymousOn() {
		po.AnonymousAccess = anon.Allow
	}
	return api.LimitURL(public.New(po))
}

// localHandler is what --listen serves: the registry API, the admin
// routes and the metrics.
func localHandler(reg *api.Registry, admin *api.Admin, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	admin.Register(mux)
	mux.Handle("GET /metrics", metrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The registry sees every /v2 path as sent, before ServeMux would
		// clean and redirect it: "/v2/../x" must get NAME_INVALID, not a 301.
		if api.IsRegistryPath(r.URL.Path) {
			reg.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// tokenHost is the host in a container token's targetImage: the tunnel's
// public host while it is up, else the address the local handler listens
// on.
func (d *Daemon) tokenHost() string {
	if h, ok := d.publicHost(); ok {
		return h
	}
	if a, ok := d.addr.Load().(string); ok {
		return a
	}
	return d.cfg.Listen
}

// Handler returns the local handler, for tests.
func (d *Daemon) Handler() http.Handler { return d.handler }

// Repack packs the layer directory again even if nothing seems to have
// changed, as a save would: a new generation if the digests changed. The
// outcome is also published as a LayerReloaded event.
func (d *Daemon) Repack(ctx context.Context) error {
	return d.layers.Repack(ctx)
}

// Generation returns the layer generation being injected.
func (d *Daemon) Generation() proxy.Generation { return d.layers.Current() }
