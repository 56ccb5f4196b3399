package daemon_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/internal/regtest"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
	"github.com/tower-reg/tower-reg/tunnel"
)

// TestSecretsStayOut pulls from a registry whose password is in the
// config, with the ngrok tunnel trying (and failing) with its auth token,
// and everything logged at debug level: neither secret appears in the
// log, the event stream, the status or the metrics.
func TestSecretsStayOut(t *testing.T) {
	const (
		user      = "alice"
		password  = "Pa55-never-printed"
		authtoken = "2ngrokTok3n-never-printed"
	)
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // the config's credentials only
	up := regtest.AuthRegistry(t, "Bearer", user, password)
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	if err := remote.Write(mustRef(t, host(up)+"/team/app:v1"), base, remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatal(err)
	}

	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config.Default()
	cfg.Registries = map[string]config.Registry{host(up): {Login: config.Login{Username: user, Password: password}}}
	cfg.Tunnel = config.Tunnel{Provider: config.TunnelNgrok, Authtoken: authtoken}
	tun, err := tunnel.NewNgrok(tunnel.NgrokOptions{Authtoken: authtoken, Version: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus(nil)
	sub := bus.Subscribe(1024)
	watch := bus.Subscribe(1024)
	defer watch.Close()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go event.Log(ctx, sub, log) // as `up --no-tui` logs events
	d, err := daemon.New(ctx, daemon.Options{
		Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), Log: log, Bus: bus, Tunnel: tun,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	local := "http://" + ln.Addr().String()

	// The event stream, as another process reads it.
	resp, err := http.Get(local + "/_towerreg/events")
	if err != nil {
		t.Fatal(err)
	}
	var stream syncbuf.Buffer
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			stream.Write([]byte(sc.Text() + "\n"))
		}
	}()

	img, err := remote.Image(mustRef(t, ln.Addr().String()+"/"+strings.Replace(host(up), ":", "_", 1)+"/team/app:v1"))
	if err != nil {
		t.Fatalf("pull with the configured credentials: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	// The tunnel fails within milliseconds, likely before the stream was
	// opened: the bus itself tells when it has.
	deadline := time.After(10 * time.Second)
	for down := false; !down; {
		select {
		case e := <-watch.C():
			s, ok := e.(event.TunnelStatus)
			down = ok && s.State == event.TunnelDown
		case <-deadline:
			t.Fatal("no tunnel down event within 10 s")
		}
	}
	for !strings.Contains(logs.String(), "tunnel down") {
		select {
		case <-deadline:
			t.Fatal("no tunnel down log line within 10 s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	var docs strings.Builder
	for _, p := range []string{"/_towerreg/status", "/metrics"} {
		r, err := http.Get(local + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		docs.Write(b)
	}
	stop()
	resp.Body.Close()
	<-streamDone
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}

	everything := map[string]string{"log": logs.String(), "event stream": stream.String(), "status and metrics": docs.String()}
	if !strings.Contains(everything["event stream"], "ManifestServed") || !strings.Contains(everything["log"], "tunnel down") {
		t.Fatalf("the pull or the tunnel left no trace to search:\nstream:\n%s\nlog:\n%s", everything["event stream"], everything["log"])
	}
	for where, text := range everything {
		for _, secret := range []string{password, authtoken} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds the secret %q:\n%s", where, secret, text)
			}
		}
	}
}
