package event

import (
	"sync"
	"sync/atomic"
	"time"
)

// Bus fans events out to subscribers.
type Bus struct {
	now func() time.Time

	mu        sync.Mutex
	subs      map[*Subscription]struct{}
	observers []func(Event)
}

// NewBus returns a bus that stamps events with now (time.Now when nil).
func NewBus(now func() time.Time) *Bus {
	if now == nil {
		now = time.Now
	}
	return &Bus{now: now, subs: map[*Subscription]struct{}{}}
}

// Subscription receives events until it is closed.
type Subscription struct {
	bus     *Bus
	c       chan Event
	dropped atomic.Int64
}

// C returns the channel the events arrive on. It is closed by Close.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped counts the events this subscriber missed because its buffer was
// full.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close stops the subscription and closes its channel.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if _, ok := s.bus.subs[s]; ok {
		delete(s.bus.subs, s)
		close(s.c)
	}
}

// Subscribe returns a subscription with room for buf pending events.
func (b *Bus) Subscribe(buf int) *Subscription {
	s := &Subscription{bus: b, c: make(chan Event, buf)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Now returns the bus clock's time, for publishers that stamp Meta.
func (b *Bus) Now() time.Time { return b.now() }

// Observe has fn called with every event, in Publish itself: for tallies
// that must see every event, which a subscription under load may drop. fn
// must be quick, and must neither block nor publish.
func (b *Bus) Observe(fn func(Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observers = append(b.observers, fn)
}

// Publish sends e to every subscriber without blocking.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, fn := range b.observers {
		fn(e)
	}
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}
