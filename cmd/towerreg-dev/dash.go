package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/runfile"
	"github.com/tower-reg/tower-reg/tui"
	"github.com/tower-reg/tower-reg/tui/feed"
)

// dash attaches the dashboard to a running daemon. Quitting it leaves the
// daemon running.
func dash(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("dash", flag.ContinueOnError)
	fl.SetOutput(stderr)
	addr := fl.String("addr", "", addrHelp)
	cfgPath := fl.String("config", "", "config file whose listen names the daemon (default $XDG_CONFIG_HOME/towerreg/config.yml)")
	noTUI := fl.Bool("no-tui", false, "print the events as lines (also when stdout is not a terminal)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("dash: unexpected argument %q", fl.Arg(0))
	}
	a, from, err := daemonAddr(ctx, *addr, *cfgPath, runfile.Path())
	if err != nil {
		return fmt.Errorf("dash: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dashboard := !*noTUI && isTerminal(stdout)
	var sink *tui.LogSink
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if dashboard {
		sink = tui.NewLogSink(slog.LevelWarn)
		log = slog.New(sink)
	}
	c := feed.New(a, log)
	// Fail now, with a plain message, if nothing answers there.
	if _, err := c.Status(ctx); err != nil {
		return fmt.Errorf("dash: no towerreg-dev at %s (from %s; start one with `towerreg-dev up`): %w", a, from, err)
	}
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if dashboard {
		return tui.Run(ctx, tui.Options{Source: c, Logs: sink, NoColor: os.Getenv("NO_COLOR") != ""})
	}
	// Headless: one line per event, its kind then its JSON, for scripts.
	for e := range c.Events() {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("dash: %w", err)
		}
		if _, err := fmt.Fprintf(stdout, "%s %s\n", event.Kind(e), b); err != nil {
			return err
		}
	}
	return nil
}
