package feed

import (
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/reload"
	"github.com/tower-reg/tower-reg/internal/syncbuf"
	"github.com/tower-reg/tower-reg/tui/internal/replay"
)

// attach starts a real daemon's local handler and a client reading it,
// and returns once the event stream is connected.
func attach(t *testing.T) (*Client, *event.Bus, *httptest.Server, *syncbuf.Buffer) {
	t.Helper()
	bus := event.NewBus(nil)
	d, err := daemon.New(t.Context(), daemon.Options{Config: config.Default(), CacheDir: t.TempDir(),
		Layer: fstest.MapFS{"foo.txt": {Data: []byte("hi")}}, LayerSource: "test", Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	var logs syncbuf.Buffer
	c := New(strings.TrimPrefix(srv.URL, "http://"), slog.New(slog.NewTextHandler(&logs, nil)))
	c.retry = 10 * time.Millisecond
	done := make(chan struct{})
	go func() { defer close(done); c.Run(t.Context()) }()
	t.Cleanup(func() { <-done })
	waitConnected(t, c, bus)
	return c, bus, srv, &logs
}

// waitConnected publishes a marker until it comes through: the stream
// is then subscribed, and nothing published after it is missed.
func waitConnected(t *testing.T, c *Client, bus *event.Bus) {
	t.Helper()
	marker := event.TunnelStatus{Provider: "marker", State: event.TunnelConnecting}
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			bus.Publish(marker)
		case e := <-c.Events():
			if ts, ok := e.(event.TunnelStatus); ok && ts.Provider == "marker" {
				drain(c)
				return
			}
		case <-deadline:
			t.Fatal("the event stream never connected")
		}
	}
}

// drain discards the markers still in flight.
func drain(c *Client) {
	for {
		select {
		case <-c.Events():
		case <-time.After(50 * time.Millisecond):
			return
		}
	}
}

func next(t *testing.T, c *Client) event.Event {
	t.Helper()
	select {
	case e := <-c.Events():
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return nil
	}
}

// TestStream checks every kind of event crosses the wire unchanged.
func TestStream(t *testing.T) {
	c, bus, _, _ := attach(t)
	for _, e := range replay.Events() {
		bus.Publish(e)
	}
	for i, want := range replay.Events() {
		got := next(t, c)
		if !equalEvents(got, want) {
			t.Errorf("event %d: got %#v, want %#v", i, got, want)
		}
	}
}

// equalEvents compares events whose times went through JSON.
func equalEvents(a, b event.Event) bool {
	if !a.When().Equal(b.When()) || reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 1; i < va.NumField(); i++ { // field 0 is Meta
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		if ta, ok := fa.(time.Time); ok {
			if !ta.Equal(fb.(time.Time)) {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(fa, fb) {
			return false
		}
	}
	return true
}

func TestStatusAndRepack(t *testing.T) {
	c, _, _, _ := attach(t)
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.DefaultRegistry != "docker.io" || st.Layer.Generation != 1 || !strings.HasPrefix(st.Layer.GzipDigest, "sha256:") {
		t.Errorf("status %+v", st)
	}
	if err := c.Repack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e, ok := next(t, c).(event.LayerReloaded); !ok || e.Trigger != reload.TriggerManual {
		t.Errorf("after a re-pack: %#v, want a manual LayerReloaded", e)
	}
}

// TestReconnect cuts the stream: the client says so, reconnects, and
// events flow again.
func TestReconnect(t *testing.T) {
	c, bus, srv, logs := attach(t)
	srv.CloseClientConnections()
	waitConnected(t, c, bus)
	bus.Publish(replay.Events()[0])
	if _, ok := next(t, c).(event.LayerPacked); !ok {
		t.Error("no event after the reconnect")
	}
	for _, want := range []string{"event stream lost; reconnecting", "event stream back"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log has no %q:\n%s", want, logs)
		}
	}
}

func TestStatusError(t *testing.T) {
	c := New("127.0.0.1:1", slog.New(slog.DiscardHandler))
	if _, err := c.Status(t.Context()); err == nil || !strings.Contains(err.Error(), "/_towerreg/status") {
		t.Errorf("got %v, want an error naming the route", err)
	}
}
