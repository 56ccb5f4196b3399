package daemon

import (
	"log/slog"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/peer"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// upstreamOptions are the bounds of upstream requests from the config,
// the defaults filled in, with a base transport that dials by policy p.
// Each audience has a transport of its own, so that a connection one
// audience's policy let through is never reused by another's: the
// connection limit is per registry host and audience.
func upstreamOptions(c config.Config, p *dialpolicy.Policy, log *slog.Logger) proxy.Options {
	o := proxy.Options{
		Insecure:        c.Insecure(),
		Log:             log,
		Timeout:         c.Upstream.Timeout.Value(),
		HeaderTimeout:   c.Upstream.HeaderTimeout.Value(),
		StallTimeout:    c.Upstream.StallTimeout.Value(),
		MaxConnsPerHost: c.Upstream.MaxConns,
		Policy:          p,
	}.WithDefaults()
	o.Transport = proxy.NewTransport(o)
	return o
}

// publicPerClient is the bound of connections (requests, behind the
// tunnel) that one client of the public handler holds at once; 0 for none.
func publicPerClient(c config.Limits) int {
	switch n := c.PublicConnsPerClient; {
	case n == 0:
		return peer.DefaultPerClient
	case n < 0:
		return 0
	default:
		return n
	}
}
