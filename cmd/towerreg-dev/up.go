package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/adrg/xdg"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/runfile"
	"github.com/tower-reg/tower-reg/layer/defaultlayer"
	"github.com/tower-reg/tower-reg/tui"
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
		logFormat  = fl.String("log-format", "text", "log format, in the log file and on stderr: text or json")
		noTUI      = fl.Bool("no-tui", false, "log lines instead of the dashboard (also when stdout is not a terminal)")
		tunnelName = fl.String("tunnel", "", "public tunnel: ngrok or off (default: ngrok when NGROK_AUTHTOKEN is set, else off)")
		offloadURL = fl.String("offload", "", "upload the injected layers to s3://bucket/prefix and redirect public clients there (credentials: the AWS variables and files)")
	)
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
	newHandler, err := handlerFor(*logFormat)
	if err != nil {
		return err
	}
	dashboard := !*noTUI && isTerminal(stdout)

	// The log file is the record: the dashboard owns the screen, and a
	// headless daemon's stderr may go nowhere.
	logFile, err := openLogFile()
	if err != nil {
		return err
	}
	defer logFile.Close()
	fileHandler := newHandler(logFile, &slog.HandlerOptions{Level: level})
	var sink *tui.LogSink
	var log, eventLog *slog.Logger
	if dashboard {
		sink = tui.NewLogSink(slog.LevelWarn)
		log = slog.New(slog.NewMultiHandler(fileHandler, sink))
		// The dashboard shows the events itself; the file records them.
		eventLog = slog.New(fileHandler)
	} else {
		log = slog.New(slog.NewMultiHandler(fileHandler, newHandler(stderr, &slog.HandlerOptions{Level: level})))
		eventLog = log
	}

	logOpenFiles(log)

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
	// The VM engines of macOS and Windows reach the host by these names:
	// the local handler answers to them.
	for _, h := range vmHostNames(runtime.GOOS) {
		if !slices.Contains(cfg.Local.Hosts, h) {
			cfg.Local.Hosts = append(cfg.Local.Hosts, h)
		}
	}
	if *tunnelName != "" {
		cfg.Tunnel.Provider = *tunnelName
	}
	if *offloadURL != "" {
		if _, _, err := config.ParseOffloadURL(*offloadURL); err != nil {
			return fmt.Errorf("up: --offload: %w", err)
		}
		cfg.Offload.URL = *offloadURL
	}
	// Before anything is packed or listens: ngrok without a token is a
	// mistake to hear about at once.
	tun, err := newTunnel(cfg.Tunnel, log)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}

	src, name, err := layerSource(cfg.LayerDir, log)
	if err != nil {
		return err
	}
	bus := event.NewBus(nil)
	sub := bus.Subscribe(1024)
	defer sub.Close()
	go event.Log(ctx, sub, eventLog)
	var dashSub *event.Subscription
	if dashboard {
		// Subscribed before New, so the dashboard sees the first pack;
		// a large buffer rides out bursts between two frames.
		dashSub = bus.Subscribe(16384)
		defer dashSub.Close()
	}

	var watchDir string
	if cfg.LayerDir != "" {
		watchDir = name // the absolute path; the default layer is embedded
	}
	// The addresses first: a taken port fails at once, not after the pack.
	local, public, err := daemon.Listen(cfg)
	if err != nil {
		return err
	}
	closeListeners := func() {
		local.Close()
		for _, l := range public {
			l.Close()
		}
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
		Tunnel:      tun,
	})
	if err != nil {
		closeListeners()
		return err
	}
	// Clients (token, dash) find this daemon by this file.
	af := publishAddrs(runfile.Path(), local, public, bus, log)
	defer af.close()
	for _, n := range pullNames(runtime.GOOS, local.Addr().String(), "") {
		log.Info("pull through this daemon", "name", n.Ref, "from", n.For)
	}
	serve := func(ctx context.Context) error { return d.Serve(ctx, local, public...) }
	if !dashboard {
		return serve(ctx)
	}
	return runWithDashboard(ctx, serve, tui.Options{Source: tui.Local(d, dashSub), Logs: sink, NoColor: os.Getenv("NO_COLOR") != ""})
}

// runWithDashboard runs the daemon under the dashboard. Quitting the
// dashboard stops the daemon gracefully and waits for it; a daemon that
// fails (its address taken) closes the dashboard, and its error is
// returned.
func runWithDashboard(ctx context.Context, serve func(context.Context) error, o tui.Options) error {
	dctx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	tctx, stopTUI := context.WithCancel(ctx)
	defer stopTUI()
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = serve(dctx)
		stopTUI()
	}()
	tuiErr := tui.Run(tctx, o)
	stopDaemon()
	<-done
	if tuiErr != nil {
		tuiErr = fmt.Errorf("dashboard: %w", tuiErr)
	}
	return errors.Join(runErr, tuiErr)
}

// handlerFor returns the constructor of the log handler for a format.
func handlerFor(format string) (func(io.Writer, *slog.HandlerOptions) slog.Handler, error) {
	switch format {
	case "text":
		return func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewTextHandler(w, o) }, nil
	case "json":
		return func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewJSONHandler(w, o) }, nil
	}
	return nil, fmt.Errorf("up: --log-format %q: want text or json", format)
}

// openLogFile opens $XDG_STATE_HOME/towerreg/towerreg.log for appending,
// readable by its owner only: it names images and registries.
func openLogFile() (*os.File, error) {
	dir := filepath.Join(xdg.StateHome, "towerreg")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "towerreg.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// layerSource opens the layer directory, or the built-in default layer.
func layerSource(dir string, log *slog.Logger) (fs.FS, string, error) {
	if dir == "" {
		if missing := defaultlayer.Missing(); len(missing) > 0 {
			log.Warn("the default layer has no entry binary for some platforms; images of those platforms keep their entrypoint (a go install build has none: use a 'make release' binary, or 'make build' in a checkout)",
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

// logOpenFiles raises the open-file limit for the layer watcher (kqueue on
// macOS takes a descriptor per file) and says what it is.
func logOpenFiles(log *slog.Logger) {
	before, after, err := raiseOpenFiles()
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		log.Info("cannot raise the open-file limit; a large layer directory may be polled rather than watched", "soft", before, "error", err)
	case after > before:
		log.Info("raised the open-file limit, for the layer watcher", "from", before, "to", after)
	default:
		log.Debug("open-file limit", "soft", after)
	}
}
