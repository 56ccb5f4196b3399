package event

import (
	"testing"
	"time"
)

func TestBusFanOutAndDrop(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := NewBus(func() time.Time { return clock })
	fast := b.Subscribe(4)
	slow := b.Subscribe(1)

	for i := range 3 {
		b.Publish(BlobServed{Meta: Meta{Time: b.Now()}, Bytes: int64(i)})
	}
	if got := len(fast.C()); got != 3 {
		t.Fatalf("fast subscriber has %d events, want 3", got)
	}
	if got := slow.Dropped(); got != 2 {
		t.Fatalf("slow subscriber dropped %d, want 2", got)
	}
	e := <-fast.C()
	if e.When() != clock {
		t.Fatalf("event time %v, want %v", e.When(), clock)
	}
	if got := e.(BlobServed).Bytes; got != 0 {
		t.Fatalf("first event bytes %d, want 0 (order kept)", got)
	}

	fast.Close()
	fast.Close() // idempotent
	n := 0
	for range fast.C() {
		n++
	}
	if n != 2 {
		t.Fatalf("closed subscription drained %d events, want the 2 left", n)
	}
	b.Publish(BlobServed{})
	if got := slow.Dropped(); got != 3 {
		t.Fatalf("slow subscriber dropped %d after close of another, want 3", got)
	}
}
