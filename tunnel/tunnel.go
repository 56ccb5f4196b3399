// Package tunnel gives the daemon's public handler a public address: a
// Tunnel connects to a provider (ngrok) and hands back a net.Listener whose
// connections come from the public URL. Off is the tunnel that never opens.
//
// A tunnel reports every change of its state (connecting, up with its URL,
// reconnecting, down) with the reason in plain words, as the daemon's
// event.TunnelStatus; the daemon stamps and publishes them. A tunnel that
// cannot connect keeps trying and keeps saying why: it never takes the
// daemon down with it.
package tunnel

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// Tunnel opens the public listener.
type Tunnel interface {
	// Provider names the tunnel in the config, the status and events:
	// "ngrok" or "off".
	Provider() string
	// Listen connects and returns the listener that the public URL's
	// connections arrive on. It retries for as long as retrying may help,
	// and returns an error only once ctx ends or the failure is one that
	// no retry mends (a domain that is not the account's, say).
	//
	// ctx bounds the whole session, not just the connect: a caller closes
	// the listener, lets its connections finish, then cancels ctx to
	// disconnect. Every state change goes to report, in order, until ctx
	// ends; report must not block.
	Listen(ctx context.Context, report func(event.TunnelStatus)) (Listener, error)
}

// Listener is an open tunnel.
type Listener interface {
	net.Listener
	// URL is the public URL, "https://reg.ngrok.app".
	URL() string
}

// New returns the tunnel that c asks for: see config.Tunnel.Effective for
// the default, and for the error of ngrok without an auth token. version
// goes into what the provider is told of its client.
func New(c config.Tunnel, version string, log *slog.Logger) (Tunnel, error) {
	p, err := c.Effective()
	if err != nil {
		return nil, err
	}
	switch p {
	case config.TunnelOff:
		return Off{}, nil
	case config.TunnelNgrok:
		return NewNgrok(NgrokOptions{Authtoken: c.Token(), Domain: c.Domain, Version: version, Log: log})
	}
	return nil, fmt.Errorf("tunnel provider %q: want ngrok or off", p)
}

// Off is no tunnel: Listen never returns a listener, and reports nothing.
type Off struct{}

// Provider implements Tunnel.
func (Off) Provider() string { return config.TunnelOff }

// Listen implements Tunnel: it waits for ctx to end.
func (Off) Listen(ctx context.Context, _ func(event.TunnelStatus)) (Listener, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
