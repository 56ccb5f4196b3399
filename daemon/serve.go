package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/peer"
	"golang.org/x/sync/errgroup"
)

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
	// The one setting after New, and not for a cycle: the listeners are
	// Serve's, so their addresses do not exist before it.
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
	d.gc.Stop()
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
