package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/adrg/xdg"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/layer/defaultlayer"
)

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("up", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		listen     = fl.String("listen", "", "registry and local API address (default "+config.DefaultListen+")")
		layerDir   = fl.String("layer", "", "layer directory to inject (default: the built-in default layer)")
		defaultReg = fl.String("default-registry", "", "registry for names with no host (default "+config.DefaultRegistry+")")
		cfgPath    = fl.String("config", "", "config file (default $XDG_CONFIG_HOME/towerreg/config.yml)")
		logLevel   = fl.String("log-level", "info", "log level: debug, info, warn, error")
		publicAddr = fl.String("public-listen", "", "also serve the public (tunnel-facing) handler on this address, e.g. 0.0.0.0:9443")
	)
	// The dashboard is not built yet, so the daemon always logs lines; the
	// flag is accepted now so that scripts written today keep working.
	fl.Bool("no-tui", false, "log lines instead of the dashboard")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("up: unexpected argument %q", fl.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("up: --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if *cfgPath == "" {
		*cfgPath = filepath.Join(xdg.ConfigHome, "towerreg", "config.yml")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *defaultReg != "" {
		cfg.DefaultRegistry = *defaultReg
	}
	if *layerDir != "" {
		cfg.LayerDir = *layerDir
	}
	if *publicAddr != "" {
		cfg.Public.Listen = *publicAddr
	}

	src, name, err := layerSource(cfg.LayerDir, log)
	if err != nil {
		return err
	}
	bus := event.NewBus(nil)
	sub := bus.Subscribe(1024)
	defer sub.Close()
	go event.Log(ctx, sub, log)

	var watchDir string
	if cfg.LayerDir != "" {
		watchDir = name // the absolute path; the default layer is embedded
	}
	d, err := daemon.New(ctx, daemon.Options{
		Config:      cfg,
		CacheDir:    filepath.Join(xdg.CacheHome, "towerreg"),
		StateDir:    filepath.Join(xdg.StateHome, "towerreg"),
		Layer:       src,
		LayerSource: name,
		LayerDir:    watchDir,
		Log:         log,
		Bus:         bus,
	})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// layerSource opens the layer directory, or the built-in default layer.
func layerSource(dir string, log *slog.Logger) (fs.FS, string, error) {
	if dir == "" {
		if missing := defaultlayer.Missing(); len(missing) > 0 {
			log.Warn("the default layer has no entry binary for some platforms; images of those platforms keep their entrypoint (run 'make layer' to build them)",
				"platforms", missing)
		}
		return defaultlayer.FS(), "default", nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("layer directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, "", fmt.Errorf("layer directory %s is not a directory", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", fmt.Errorf("layer directory: %w", err)
	}
	return os.DirFS(abs), abs, nil
}
