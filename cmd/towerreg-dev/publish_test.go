package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/runfile"
)

// TestPublishAddrs: the runtime file names the listeners and this pid,
// follows the tunnel up and down, and is gone once the daemon stopped.
func TestPublishAddrs(t *testing.T) {
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	local, pub := listen(), listen()
	path := filepath.Join(t.TempDir(), "towerreg", runfile.Name)
	bus := event.NewBus(nil)
	f := publishAddrs(path, local, []net.Listener{pub}, bus, slog.New(slog.DiscardHandler))
	read := func() runfile.Info {
		t.Helper()
		info, err := runfile.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	info := read()
	if info.Pid != os.Getpid() || info.Local != local.Addr().String() || len(info.Public) != 1 || info.Public[0] != pub.Addr().String() || info.Tunnel != "" {
		t.Errorf("file = %+v", info)
	}
	for _, step := range []struct {
		s    event.TunnelStatus
		want string
	}{
		{event.TunnelStatus{State: event.TunnelConnecting}, ""},
		{event.TunnelStatus{State: event.TunnelUp, URL: "https://reg.ngrok.app"}, "https://reg.ngrok.app"},
		{event.TunnelStatus{State: event.TunnelReconnecting}, ""},
		{event.TunnelStatus{State: event.TunnelUp, URL: "https://reg.ngrok.app"}, "https://reg.ngrok.app"},
		{event.TunnelStatus{State: event.TunnelDown}, ""},
	} {
		bus.Publish(step.s)
		if got := read().Tunnel; got != step.want {
			t.Errorf("after %s: tunnel %q, want %q", step.s.State, got, step.want)
		}
	}
	f.close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the file outlives the daemon: %v", err)
	}
	// A tunnel report during the shutdown does not write it again.
	bus.Publish(event.TunnelStatus{State: event.TunnelUp, URL: "https://late.ngrok.app"})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("written again after close: %v", err)
	}
}
