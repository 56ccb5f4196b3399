package tui

import (
	"context"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// Source is what the dashboard reads the daemon through.
type Source interface {
	// Events delivers the daemon's events; closing it ends the stream.
	Events() <-chan event.Event
	// Status answers what GET /_towerreg/status does.
	Status(ctx context.Context) (admin.Status, error)
	// Repack forces a re-pack of the layer directory.
	Repack(ctx context.Context) error
}

// Daemon is the part of a daemon in this process that the dashboard
// reads; the dashboard takes it, not the daemon, so that it builds
// without the daemon's upstream client and tunnel.
type Daemon interface {
	Status() admin.Status
	Repack(ctx context.Context) error
}

// local is a daemon in this process.
type local struct {
	d   Daemon
	sub *event.Subscription
}

// Local is the Source of a daemon in this process; sub is a subscription
// to its bus, taken before the daemon was built so that its first layer
// pack is seen.
func Local(d Daemon, sub *event.Subscription) Source { return local{d: d, sub: sub} }

func (l local) Events() <-chan event.Event { return l.sub.C() }

func (l local) Status(context.Context) (admin.Status, error) { return l.d.Status(), nil }

func (l local) Repack(ctx context.Context) error { return l.d.Repack(ctx) }
