// Command towerreg-dev runs the tower-reg developer daemon: a local registry
// proxy that appends a layer to every image pulled through it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `towerreg-dev: a registry proxy that appends a layer to every pulled image

Usage:
  towerreg-dev up [flags]     run the daemon and its dashboard
  towerreg-dev dash [flags]   attach the dashboard to a running daemon (found as token finds it)
  towerreg-dev pack [flags]   pack a layer directory; print its {location, gzipDigest, gzipSize, tarDigest}
  towerreg-dev token IMAGE    ask the daemon for a container token (the daemon: --addr, else its
                              runtime file, else listen in the config, else 127.0.0.1:9090)
  towerreg-dev config [flags] print the effective config, secrets masked
  towerreg-dev version        print the version

Run 'towerreg-dev COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "towerreg-dev:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:], stdout, stderr)
	case "dash":
		return dash(ctx, args[1:], stdout, stderr)
	case "pack":
		return pack(ctx, args[1:], stdout, stderr)
	case "token":
		return tokenCommand(ctx, args[1:], stdout, stderr)
	case "config":
		return configCommand(args[1:], stdout, stderr)
	case "version":
		return version(stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
