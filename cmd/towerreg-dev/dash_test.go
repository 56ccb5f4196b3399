package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// TestDashHeadless attaches `dash --no-tui` to a daemon and reads its
// events as lines.
func TestDashHeadless(t *testing.T) {
	bus := event.NewBus(nil)
	d, err := daemon.New(t.Context(), daemon.Options{Config: config.Default(), CacheDir: t.TempDir(),
		Layer: fstest.MapFS{"foo.txt": {Data: []byte("hi")}}, LayerSource: "test", Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dash", "--no-tui", "--addr", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), `TunnelStatus {"time"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no event line; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		bus.Publish(event.TunnelStatus{Provider: "ngrok", State: event.TunnelUp, URL: "https://x.example"})
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dash: %v", err)
	}
	if !strings.Contains(stdout.String(), `"state":"up","url":"https://x.example"`) {
		t.Errorf("event line without its JSON:\n%s", stdout.String())
	}
}

func TestDashNoDaemon(t *testing.T) {
	err := run(t.Context(), []string{"dash", "--addr", "127.0.0.1:1"}, &syncbuf.Buffer{}, &syncbuf.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no towerreg-dev at 127.0.0.1:1") {
		t.Errorf("got %v, want a plain error", err)
	}
}
