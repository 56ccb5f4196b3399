package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// TestTokenShortInLogsAndEvents: a container token in a request path, well
// formed or not, shows in its short form only in the log (the daemon's own
// lines and the event lines of --no-tui) and in the events that
// /_towerreg/events and the dashboard show, whether the request was a pull
// that failed, a malformed path, or an upstream failure logged at error.
func TestTokenShortInLogsAndEvents(t *testing.T) {
	upstream := httptest.NewServer(registry.New(registry.Logger(quiet)))
	t.Cleanup(upstream.Close)
	if err := remote.Write(mustRef(t, host(upstream)+"/test/app:latest"), randomImage(t, types.DockerManifestSchema2, v1.Config{})); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bus := event.NewBus(nil)
	sub := bus.Subscribe(4096)
	defer sub.Close()
	logged := make(chan struct{})
	ctx, stop := context.WithCancel(t.Context())
	go func() { defer close(logged); event.Log(ctx, bus.Subscribe(4096), log) }()
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: config.Default(), CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), LayerSource: "test",
		Keychain: authn.NewMultiKeychain(), Bus: bus, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.WaitIdle)
	proxy := httptest.NewServer(d.Handler())
	t.Cleanup(proxy.Close)

	body, _ := json.Marshal(map[string]any{"containerImage": host(upstream) + "/test/app"})
	resp, err := http.Post(proxy.URL+"/container-token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var a struct{ ContainerToken string }
	json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	tok := a.ContainerToken
	if len(tok) < 26 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}

	// A registry that is down: its pulls fail with a 5xx, which is logged.
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downHost := strings.Replace(down.Addr().String(), ":", "_", 1)
	down.Close()
	zero := "sha256:" + strings.Repeat("0", 64)
	for _, p := range []string{
		"/v2//wt/" + tok + "/test/app/manifests/latest",     // not a token route: a malformed name
		"/v2//wt/" + tok + "/test/app/blobs/" + zero,        // the same, for a blob
		"/v2/x/wt/" + tok + "/test/app/manifests/latest",    // a token one level down
		"/v2/" + downHost + "/wt/" + tok + "/manifests/v1",  // an upstream failure: a 5xx, logged
		"/v2/" + downHost + "/wt/" + tok + "/blobs/" + zero, // the same, for a blob
		"/v2/wt/" + tok + "/test/app/manifests/nope:x:y",    // the token's route, a bad tag
	} {
		resp, err := http.Get(proxy.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("GET %s: %d, want an error", p, resp.StatusCode)
		}
	}
	var events []string
	for len(sub.C()) > 0 {
		b, _ := json.Marshal(<-sub.C())
		events = append(events, string(b))
	}
	stop()
	<-logged
	if !strings.Contains(logs.String(), "request failed") || !strings.Contains(logs.String(), tok[:6]+"…") {
		t.Fatalf("the test did not exercise the logging it checks:\n%s", logs)
	}
	if n := len(events); n < 5 {
		t.Fatalf("%d events, want one per pull request at least", n)
	}
	for _, e := range events {
		if strings.Contains(e, tok) {
			t.Errorf("an event carries the whole token: %s", e)
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, tok) {
			t.Errorf("a log line carries the whole token: %s", line)
		}
	}
}
