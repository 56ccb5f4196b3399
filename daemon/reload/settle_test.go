package reload

import (
	"context"
	"testing"
	"time"
)

func TestPendingEdits(t *testing.T) {
	const short = 20 * time.Millisecond
	tests := []struct {
		name    string
		steps   func(p *pendingEdits)
		settled bool // wait returns true at once
	}{
		{"nothing seen", func(p *pendingEdits) {}, true},
		{"a burst not reloaded", func(p *pendingEdits) { p.add() }, false},
		{"a burst reloaded", func(p *pendingEdits) { p.add(); p.done(1) }, true},
		{"two bursts, one reloaded", func(p *pendingEdits) { p.add(); p.add(); p.done(1) }, false},
		{"two bursts in one Change", func(p *pendingEdits) { p.add(); p.add(); p.done(2) }, true},
		{"the watcher stopped", func(p *pendingEdits) { p.add(); p.add(); p.forget() }, true},
		{"a new burst after a reload", func(p *pendingEdits) { p.add(); p.done(1); p.add() }, false},
		{"more reloaded than counted", func(p *pendingEdits) { p.done(3); p.add() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p pendingEdits
			tt.steps(&p)
			start := time.Now()
			got := p.wait(context.Background(), short)
			if got != tt.settled {
				t.Fatalf("wait = %v, want %v", got, tt.settled)
			}
			if !got && time.Since(start) < short {
				t.Fatalf("wait gave up after %v, before its bound %v", time.Since(start), short)
			}
		})
	}
	t.Run("woken by the reload", func(t *testing.T) {
		var p pendingEdits
		p.add()
		go func() {
			time.Sleep(short)
			p.done(1)
		}()
		if !p.wait(context.Background(), time.Minute) {
			t.Fatal("wait did not return when the burst was reloaded")
		}
	})
	t.Run("a burst after the pull began is not waited for", func(t *testing.T) {
		var p pendingEdits
		p.add()
		waiting := make(chan bool)
		go func() { waiting <- p.wait(context.Background(), time.Minute) }()
		time.Sleep(short)
		p.add() // a tree that keeps changing
		p.done(1)
		select {
		case ok := <-waiting:
			if !ok {
				t.Fatal("wait gave up")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("wait waited for a burst that started after it")
		}
	})
	t.Run("the client left", func(t *testing.T) {
		var p pendingEdits
		p.add()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if p.wait(ctx, time.Minute) {
			t.Fatal("wait reported settled for a client that left")
		}
	})
}
