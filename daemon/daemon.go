package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/errgroup"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/daemon/peer"
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
	gc          *cacheGC
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
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Bus == nil {
		o.Bus = event.NewBus(nil)
	}
	// Every short name resolves against the default registry: a bad one
	// would fail each pull, so the daemon does not start with it.
	if _, err := proxy.ParseRepo("library/busybox", o.Config.DefaultRegistry); err != nil {
		return nil, fmt.Errorf("default_registry %q: %w", o.Config.DefaultRegistry, err)
	}
	st, err := store.Open(filepath.Join(o.CacheDir, "store"))
	if err != nil {
		return nil, err
	}
	if o.Layer == nil && o.LayerDir != "" {
		o.Layer = os.DirFS(o.LayerDir)
	}
	off, err := newOffloader(ctx, o, st)
	if err != nil {
		return nil, err
	}
	// Each new generation is the moment the store grows by a layer set,
	// and the offload store's layers are due.
	swapped := func(ctx context.Context, g proxy.Generation) {
		collect(ctx, st, o.Config.CacheMaxBytes, g, o.Log)
		off.generation(g)
	}
	layers, err := reload.New(ctx, reload.Options{Store: st, Layer: o.Layer, Source: o.LayerSource, Dir: o.LayerDir,
		Bus: o.Bus, Log: o.Log, AfterSwap: swapped})
	if err != nil {
		return nil, err
	}
	kc := o.Keychain
	if kc == nil {
		ckc, err := o.Config.Keychain()
		if err != nil {
			return nil, err
		}
		kc = authn.NewMultiKeychain(ckc, authn.DefaultKeychain)
	}
	met := newMetrics()
	o.Bus.Observe(met.observe)
	anon, err := checkAnonymous(o.Config)
	if err != nil {
		return nil, err
	}
	gc := newCacheGC(ctx, st, layers, o.Config.CacheMaxBytes, o.Log)
	st.OnWrite(gc.grew)
	ss := newStacks(o.Config, st, layers, o.Bus, o.Log, met.transport)
	// The developer (the local handler, and its container token routes)
	// reaches any address but the daemon's own listeners, with their
	// credentials.
	dev := ss.build(audience{name: "local", keychain: kc, private: dialpolicy.AnyHost,
		blobs: proxy.BlobMode(o.Config.Blobs.Local)})
	up, rw, reg := dev.up, dev.rw, dev.reg
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = defaultShutdownTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	d := &Daemon{cfg: o.Config, shutdown: o.ShutdownTimeout, idle: o.IdleTimeout, log: o.Log, bus: o.Bus, layers: layers, offload: off,
		layerSource: o.LayerSource, started: time.Now(), counts: &counters{}, tunnel: o.Tunnel, gc: gc}
	o.Bus.Observe(d.counts.add)
	admin := api.NewAdmin(up, o.Bus, d.Status, d.Repack, o.Log)
	admin.SetTokenRate(o.Config.Limits.TokenRequestsPerMinute)
	// The --listen host and the machine's configured names, besides
	// localhost and loopback addresses: any other Host is a rebound name.
	hosts := append([]string{o.Config.Listen}, o.Config.Local.Hosts...)
	d.handler = api.AllowHosts(hosts, api.LimitURL(localHandler(reg, admin, met.handler())))

	stateDir := o.StateDir
	if stateDir == "" {
		stateDir = filepath.Join(o.CacheDir, "state")
	}
	ts, err := token.Open(ctx, filepath.Join(stateDir, "tokens"), token.Options{Now: o.Bus.Now, Log: o.Log})
	if err != nil {
		return nil, err
	}
	var upload proxy.Uploader
	if off != nil {
		upload = off
	}
	d.tokenStore = ts
	d.tokens = token.NewService(token.ServiceOptions{
		Store: ts, Blobs: st, Resolver: rw, Layers: layers, Fetcher: fetch.New(fetch.Options{}),
		TTL: o.Config.TokenTTL.Value(), DefaultRegistry: o.Config.DefaultRegistry, Host: d.tokenHost,
		Bus: o.Bus, Log: o.Log, Upload: upload,
	})
	// The first GC runs once the live tokens pinned their blobs and
	// generation records: before, it could collect them.
	swapped(ctx, layers.Current())
	reg.SetTokens(d.tokens)
	admin.SetTokens(d.tokens)

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
	loggedIn, anonymous, tok := ps.loggedIn, ps.anonymous, ps.token
	d.registries = []*api.Registry{reg, loggedIn.reg, anonymous.reg, tok.reg}
	d.policies = ss.policies
	po := public.Options{
		Full:       publicChallenge(tok.reg),
		LoggedIn:   publicChallenge(loggedIn.reg),
		Anonymous:  publicChallenge(anonymous.reg),
		Login:      login,
		TokenRoute: api.IsTokenPath,
		Log:        o.Log,
	}
	if o.Config.Public.AnonymousOn() {
		po.AnonymousAccess = anon.Allow
	}
	d.public = api.LimitURL(public.New(po))
	if login.Password != "" {
		d.publicUser, d.publicFile = login.Username, file
	}
	return d, nil
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

// Run listens on the configured addresses (the local one, and the public
// one if configured) and serves until ctx ends, then shuts down gracefully.
func (d *Daemon) Run(ctx context.Context) error {
	ln, pub, err := Listen(d.cfg)
	if err != nil {
		return err
	}
	return d.Serve(ctx, ln, pub...)
}

// Listen opens the listeners cfg asks for, for Serve: the local one, and
// the public one if configured. Run is Listen then Serve; a caller that
// must know the addresses before serving (to publish them), or that wants
// a taken port to fail before the layer is packed, calls both.
func Listen(cfg config.Config) (local net.Listener, public []net.Listener, err error) {
	if err := checkLoopback(cfg.Listen); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w (is another towerreg-dev or registry running? choose another address with --listen)", cfg.Listen, err)
	}
	if a := cfg.Public.Listen; a != "" {
		pl, err := net.Listen("tcp", a)
		if err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("listen on %s: %w (choose another address with --public-listen)", a, err)
		}
		public = append(public, pl)
	}
	return ln, public, nil
}

// checkLoopback refuses a local address that other machines could reach:
// the local handler pulls with the developer's registry credentials and
// serves the admin API, so it is for this machine only.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if !dialpolicy.Loopback(host) {
		return fmt.Errorf("--listen %s is not a loopback address: the local handler uses your registry credentials and serves the admin API, so it listens on this machine only (for example 127.0.0.1:9090); to serve other machines, use --public-listen or the tunnel", addr)
	}
	return nil
}

// Serve serves the local handler on local, and the public handler on each
// of public and on the tunnel, until ctx ends.
func (d *Daemon) Serve(ctx context.Context, local net.Listener, public ...net.Listener) error {
	// Before any server or the tunnel starts: a token issued, or a tunnel
	// state reported, at once already needs the address.
	addr := local.Addr().String()
	d.addr.Store(addr)
	own := []net.Addr{local.Addr()}
	for _, ln := range public {
		own = append(own, ln.Addr())
	}
	for _, p := range d.policies {
		p.SetOwn(own...)
	}
	// Requests run on their own context, cancelled only when the shutdown
	// gives up waiting: a stop lets in-flight pulls finish, within a bound.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	g, gctx := errgroup.WithContext(ctx)
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       d.idle,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return base },
		}
	}
	shutdown := func(srv *http.Server, name string) {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), d.shutdown)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// Pulls still running are cut: their clients see a broken
			// transfer and retry, which beats a daemon that never stops.
			d.log.Warn("in-flight requests did not finish in time; closing them", "listener", name, "after", d.shutdown)
			cancelBase()
			srv.Close()
		}
	}
	serve := func(ln net.Listener, h http.Handler) {
		srv := newServer(h)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			shutdown(srv, ln.Addr().String())
			return nil
		})
	}
	serve(local, d.handler)
	var pubAddrs []string
	perClient := publicPerClient(d.cfg.Limits)
	for _, ln := range public {
		serve(peer.LimitConns(ln, perClient, d.log), d.public)
		pubAddrs = append(pubAddrs, ln.Addr().String())
	}
	d.tun.mu.Lock()
	d.publicAddrs = pubAddrs
	d.tun.mu.Unlock()
	if d.tunnel != nil {
		g.Go(func() error {
			// The tunnel's connections are its agent's: the client is the
			// address its edge forwards, trusted on this server only, and
			// the bound is on that client's requests.
			d.runTunnel(gctx, newServer(peer.Forwarded(peer.LimitRequests(perClient, d.public))), shutdown)
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		d.log.Info("shutting down", "in-flight limit", d.shutdown)
		return nil
	})
	g.Go(func() error { return d.layers.Watch(gctx) })
	g.Go(func() error { return d.tokens.Run(gctx) })
	d.log.Info("ready", "listen", addr, "layer", d.Generation().Set.Common.GzipDigest.String(),
		"try", "docker pull "+addr+"/library/busybox")
	for _, a := range pubAddrs {
		attrs := []any{"listen", a, "login", "none configured: anonymous and container-token pulls only"}
		if d.publicUser != "" {
			attrs = []any{"listen", a, "login", "docker login " + a + " -u " + d.publicUser}
		}
		if d.publicFile != "" {
			attrs = append(attrs, "password", "in "+d.publicFile)
		}
		d.log.Info("public handler ready", attrs...)
	}
	err := g.Wait()
	d.WaitIdle()
	d.offload.stop()
	d.gc.stop()
	// Once no pull is in flight, so that the counts saved are final.
	return errors.Join(err, d.tokens.Flush(context.WithoutCancel(ctx)))
}

// WaitIdle waits for the blob requests in flight and the work that
// outlives them: blobs being committed to the cache.
func (d *Daemon) WaitIdle() {
	for _, r := range d.registries {
		r.Wait()
	}
}

// TriggerManual is the trigger of a reload asked for by Repack.
const TriggerManual = reload.TriggerManual
