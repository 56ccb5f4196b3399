package reload

import (
	"context"
	"sync"
	"time"
)

// settleMax bounds how long a pull waits for the reload of the edits made
// before it. The wait is that of one quiet window and one pack, which a
// loaded machine can stretch to many seconds; the bound is for a pack that
// hangs, not for a tree that keeps changing (edits made after the pull
// began are not waited for).
const settleMax = time.Minute

// pendingEdits counts the watcher's bursts of edits: those started, and
// those reloaded. A burst is counted as its first event arrives, before
// the quiet window and the pack, so a `docker run --pull=always` started
// right after a build waits for the build's generation instead of racing
// it.
type pendingEdits struct {
	mu       sync.Mutex
	started  uint64
	reloaded uint64
	// changed is closed, and replaced, each time reloaded grows.
	changed chan struct{}
}

// add counts a burst that started.
func (p *pendingEdits) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started++
}

// done counts n bursts whose reload is over (or failed: the generation
// that serves is then the previous one, and waiting longer would not
// change that). The watcher hands bursts over in the order they started,
// so the first reloaded are the first started.
func (p *pendingEdits) done(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reloaded = min(p.reloaded+uint64(n), p.started)
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// forget counts every burst as reloaded: the watcher stopped, and their
// Changes will not come.
func (p *pendingEdits) forget() {
	p.mu.Lock()
	n := p.started - p.reloaded
	p.mu.Unlock()
	p.done(int(n))
}

// wait returns once the bursts started before the call are reloaded, after
// max, or when ctx ends, whichever is first. It reports whether they were.
func (p *pendingEdits) wait(ctx context.Context, max time.Duration) bool {
	var timeout <-chan time.Time
	p.mu.Lock()
	target := p.started
	for p.reloaded < target {
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		changed := p.changed
		p.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(max)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return true
}
