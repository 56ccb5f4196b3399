package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// Tunnel gives the public handler a public URL. The daemon declares what
// it consumes, and package tunnel's providers fit it without importing
// the daemon: cmd/ builds the one the config asks for, so the daemon
// builds without the provider's SDK. A nil Tunnel is off.
type Tunnel interface {
	// Provider names the tunnel in the status and the events: "ngrok".
	Provider() string
	// Listen connects and returns the listener that the public URL's
	// connections arrive on, having reported up with the URL. It
	// retries for as long as retrying may help, and returns an error only
	// once ctx ends or the failure is one that no retry mends.
	//
	// ctx bounds the whole session, not just the connect: the daemon
	// closes the listener, lets its connections finish, then cancels ctx
	// to disconnect. Every state change (event.TunnelConnecting, Up,
	// Reconnecting, Down) goes to report, in order, with the URL when up
	// and the reason in plain words when not; report does not block.
	Listen(ctx context.Context, report func(state, url, reason string)) (net.Listener, error)
}

// tunnelState is what the daemon knows of its tunnel: the last state the
// tunnel reported, for Status and for the host of container tokens.
type tunnelState struct {
	mu   sync.Mutex
	last event.TunnelStatus
}

// reportTunnel records a state change of the tunnel and publishes it.
func (d *Daemon) reportTunnel(s event.TunnelStatus) {
	s.Time = d.bus.Now()
	d.tun.mu.Lock()
	d.tun.last = s
	d.tun.mu.Unlock()
	d.bus.Publish(s)
}

func (d *Daemon) tunnelStatus() event.TunnelStatus {
	d.tun.mu.Lock()
	defer d.tun.mu.Unlock()
	return d.tun.last
}

// publicHost is the tunnel's public host while it is up.
func (d *Daemon) publicHost() (string, bool) {
	s := d.tunnelStatus()
	if s.State != event.TunnelUp || s.URL == "" {
		return "", false
	}
	u, err := url.Parse(s.URL)
	if err != nil || u.Host == "" {
		return "", false
	}
	return u.Host, true
}

// runTunnel opens the tunnel and serves the public handler on it with srv
// until ctx ends; shutdown then stops srv as it stops the other servers,
// letting in-flight pulls finish, before the tunnel disconnects. Whatever
// the tunnel does, the local registry goes on: runTunnel reports, logs and
// returns, never fails the daemon.
func (d *Daemon) runTunnel(ctx context.Context, srv *http.Server, shutdown func(*http.Server, string)) {
	// The session outlives ctx by the time the shutdown takes, so that
	// pulls in flight through the tunnel can finish.
	session, endSession := context.WithCancel(context.WithoutCancel(ctx))
	defer endSession()
	stop := context.AfterFunc(ctx, endSession)
	provider := d.tunnel.Provider()
	ln, err := d.tunnel.Listen(session, func(state, url, reason string) {
		d.reportTunnel(event.TunnelStatus{Provider: provider, State: state, URL: url, Err: reason})
	})
	if err != nil {
		stop()
		if ctx.Err() == nil {
			// Listen said why in its report; this is the log's half.
			d.log.Warn("the tunnel gave up; the local registry keeps serving without it", "provider", provider, "error", err)
		}
		d.tunnelStopped()
		return
	}
	if !stop() {
		ln.Close()
		d.tunnelStopped()
		return
	}
	// Listen reported up, with the URL, before it returned.
	pubURL := d.tunnelStatus().URL
	d.log.Info("tunnel ready", "provider", provider, "url", pubURL,
		"try", "docker pull "+hostOf(pubURL)+"/library/busybox")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shutdown(srv, pubURL)
		<-served
	case err := <-served:
		// The provider reconnects by itself; a listener that fails is a
		// tunnel gone for good.
		srv.Close()
		if !errors.Is(err, http.ErrServerClosed) {
			d.reportTunnel(event.TunnelStatus{Provider: provider, State: event.TunnelDown, Err: "the tunnel closed: " + err.Error()})
			d.log.Warn("the tunnel closed; the local registry keeps serving without it", "provider", provider, "error", err)
			return
		}
	}
	endSession()
	d.tunnelStopped()
}

// tunnelStopped reports the end of a tunnel that had said anything.
func (d *Daemon) tunnelStopped() {
	if s := d.tunnelStatus(); s.State != "" && s.State != event.TunnelDown {
		d.reportTunnel(event.TunnelStatus{Provider: s.Provider, State: event.TunnelDown, Err: "towerreg-dev is shutting down"})
	}
}

// tunnelProvider names the tunnel in the status: "off" without one.
func (d *Daemon) tunnelProvider() string {
	if d.tunnel == nil {
		return config.TunnelOff
	}
	return d.tunnel.Provider()
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}
