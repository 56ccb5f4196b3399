package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/adrg/xdg"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/peer"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// configCommand prints the effective config: the file over the defaults,
// with the tunnel provider resolved the way `up` resolves it, and every
// secret masked, so that the output can be pasted into a bug report.
func configCommand(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("config", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "config file (default $XDG_CONFIG_HOME/towerreg/config.yml)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q", fl.Arg(0))
	}
	path := *cfgPath
	if path == "" {
		path = defaultConfigPath()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	// A provider that cannot run (ngrok without a token) is shown as
	// written: `up` is where that is an error.
	if p, err := cfg.Tunnel.Effective(); err == nil {
		cfg.Tunnel.Provider = p
	}
	fillDefaults(&cfg)
	b, err := cfg.YAML()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fmt.Fprintf(stdout, "# effective config: %s over the defaults; secrets masked\n", path)
	_, err = stdout.Write(b)
	return err
}

// fillDefaults writes out the values that a zero field stands for, so that
// the output shows what runs rather than "upstream: {}".
func fillDefaults(c *config.Config) {
	if c.TokenTTL.Value() <= 0 {
		c.TokenTTL = config.Duration(token.DefaultTTL.String())
	}
	u := proxy.Options{Timeout: c.Upstream.Timeout.Value(), HeaderTimeout: c.Upstream.HeaderTimeout.Value(),
		StallTimeout: c.Upstream.StallTimeout.Value(), MaxConnsPerHost: c.Upstream.MaxConns}.WithDefaults()
	c.Upstream = config.Upstream{Timeout: config.Duration(u.Timeout.String()), HeaderTimeout: config.Duration(u.HeaderTimeout.String()),
		StallTimeout: config.Duration(u.StallTimeout.String()), MaxConns: u.MaxConnsPerHost}
	if c.Limits.TokenRequestsPerMinute == 0 {
		c.Limits.TokenRequestsPerMinute = api.DefaultTokenRequestsPerMinute
	}
	if c.Limits.PublicConnsPerClient == 0 {
		c.Limits.PublicConnsPerClient = peer.DefaultPerClient
	}
	if c.Offload.On() {
		c.Offload.PresignTTL = config.Duration(c.Offload.TTL().String())
	}
	on := c.Public.AnonymousOn()
	c.Public.Anonymous = &on
	c.Public.AnonymousRegistries = c.Public.AnonymousFrom()
}

func defaultConfigPath() string {
	return filepath.Join(xdg.ConfigHome, "towerreg", "config.yml")
}
