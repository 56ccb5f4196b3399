// Package tunneltest provides a tunnel that its test drives, step by step.
package tunneltest

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/tower-reg/tower-reg/tunnel"
)

// Fake is a tunnel, as the daemon consumes one, whose public end is a listener on 127.0.0.1 and
// whose state changes when its test says: Up, Drop, Fail. Like ngrok's,
// its listener outlives a dropped connection.
type Fake struct {
	steps chan step
	mu    sync.Mutex
	ln    net.Listener
}

type step struct {
	state  string
	reason string
}

// New returns a fake tunnel. Its Listen reports connecting and waits for
// the first step.
func New() *Fake { return &Fake{steps: make(chan step)} }

// Provider names the fake in the status and the events.
func (f *Fake) Provider() string { return "fake" }

// Up connects (or reconnects) the tunnel.
func (f *Fake) Up(ctx context.Context) error { return f.send(ctx, step{state: tunnel.Up}) }

// Drop loses the connection for reason: the tunnel reports reconnecting.
func (f *Fake) Drop(ctx context.Context, reason string) error {
	return f.send(ctx, step{state: tunnel.Reconnecting, reason: reason})
}

// Fail fails the connect for good, before the tunnel was ever up: Listen
// reports down and returns an error.
func (f *Fake) Fail(ctx context.Context, reason string) error {
	return f.send(ctx, step{state: tunnel.Down, reason: reason})
}

// Addr is the public end's address, once up.
func (f *Fake) Addr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		return ""
	}
	return f.ln.Addr().String()
}

func (f *Fake) send(ctx context.Context, s step) error {
	select {
	case f.steps <- s:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Listen reports connecting, then follows its test's steps: see
// tunnel.Ngrok's Listen for the contract.
func (f *Fake) Listen(ctx context.Context, status func(state, url, reason string)) (net.Listener, error) {
	status(tunnel.Connecting, "", "")
	for {
		var s step
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case s = <-f.steps:
		}
		switch s.state {
		case tunnel.Down:
			status(tunnel.Down, "", s.reason)
			return nil, errors.New(s.reason)
		case tunnel.Reconnecting:
			status(tunnel.Down, "", s.reason+" (retrying)")
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.ln = ln
		f.mu.Unlock()
		url := "http://" + ln.Addr().String()
		status(tunnel.Up, url, "")
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-f.steps:
					switch s.state {
					case tunnel.Up:
						status(tunnel.Up, url, "")
					default:
						status(tunnel.Reconnecting, "", s.reason)
					}
				}
			}
		}()
		return ln, nil
	}
}
