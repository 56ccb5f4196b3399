package main

import (
	"fmt"
	"log/slog"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/tunnel"
)

// newTunnel builds the tunnel that c asks for: nil when it is off. See
// config.Tunnel.Effective for the default, and for the error of ngrok
// without an auth token. The daemon takes the tunnel built, so that it
// builds without the provider's SDK and no test of it opens a tunnel
// because NGROK_AUTHTOKEN is set.
func newTunnel(c config.Tunnel, log *slog.Logger) (daemon.Tunnel, error) {
	p, err := c.Effective()
	if err != nil {
		return nil, err
	}
	switch p {
	case config.TunnelOff:
		return nil, nil
	case config.TunnelNgrok:
		n, err := tunnel.NewNgrok(tunnel.NgrokOptions{Authtoken: c.Token(), Domain: c.Domain, Version: daemon.Version, Log: log})
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("tunnel provider %q: want ngrok or off", p)
}
