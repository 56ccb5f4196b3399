package main

import (
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/runfile"
)

// addrFile keeps the runtime file of a running `up` in step with the
// daemon: written once it listens, rewritten when the tunnel comes up or
// goes down, removed when it stops.
type addrFile struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex
	info runfile.Info
	done bool
}

// publishAddrs writes the runtime file for the listeners and watches the
// bus for the tunnel's URL. Call close once the daemon stopped.
func publishAddrs(path string, local net.Listener, public []net.Listener, bus *event.Bus, log *slog.Logger) *addrFile {
	f := &addrFile{path: path, log: log, info: runfile.Info{Pid: os.Getpid(), Local: local.Addr().String(),
		Version: daemon.Version, Started: time.Now().UTC()}}
	for _, l := range public {
		f.info.Public = append(f.info.Public, l.Addr().String())
	}
	bus.Observe(func(e event.Event) {
		if s, ok := e.(event.TunnelStatus); ok {
			url := ""
			if s.State == event.TunnelUp {
				url = s.URL
			}
			f.setTunnel(url)
		}
	})
	f.mu.Lock()
	f.write()
	f.mu.Unlock()
	return f
}

func (f *addrFile) setTunnel(url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || f.info.Tunnel == url {
		return
	}
	f.info.Tunnel = url
	f.write()
}

// write writes the file; f.mu is held. A file that cannot be written
// costs the clients their discovery, not the daemon its run.
func (f *addrFile) write() {
	if err := runfile.Write(f.path, f.info); err != nil {
		f.log.Warn("cannot write the runtime file: clients need --addr to find this daemon", "path", f.path, "error", err)
		return
	}
	f.log.Debug("runtime file written", "path", f.path, "local", f.info.Local, "tunnel", f.info.Tunnel)
}

// close removes the file, unless another daemon has written its own since.
func (f *addrFile) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	if err := runfile.Remove(f.path, f.info.Pid); err != nil {
		f.log.Warn("cannot remove the runtime file", "path", f.path, "error", err)
	}
}
