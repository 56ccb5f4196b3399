package main

import (
	"context"
	"fmt"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/runfile"
)

// daemonAddr finds the daemon a client talks to, in order: the --addr
// flag; the runtime file of a running `up` (if its process is alive and
// answers); the config's listen; the default. from says which, for the
// error that nothing answers there.
func daemonAddr(ctx context.Context, flagAddr, cfgPath, runPath string) (addr, from string, err error) {
	if flagAddr != "" {
		return flagAddr, "--addr", nil
	}
	if info, ok, _ := runfile.Find(ctx, runPath); ok {
		return info.Local, runPath, nil
	}
	if cfgPath == "" {
		cfgPath = defaultConfigPath()
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", "", err
	}
	if cfg.Listen != "" && cfg.Listen != config.DefaultListen {
		return cfg.Listen, "listen in " + cfgPath, nil
	}
	return config.DefaultListen, "the default", nil
}

// addrHelp is the help of a client's --addr flag.
const addrHelp = "the daemon's local address (default: the one a running 'towerreg-dev up' wrote to its runtime file, else listen in the config, else " + config.DefaultListen + ")"

// unreachable is the error of a client that found no daemon at addr.
func unreachable(cmd, addr, from string, err error) error {
	return fmt.Errorf("%s: cannot reach the daemon at %s (from %s; is 'towerreg-dev up' running?): %w", cmd, addr, from, err)
}
