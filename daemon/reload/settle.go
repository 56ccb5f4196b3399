package reload

import (
	"context"
	"sync"
	"time"
)

// settleMax bounds how long a pull waits for a reload an edit started: a
// tree that keeps changing (a build writing for minutes, a log file in the
// layer directory) must not hold pulls back for longer.
const settleMax = 10 * time.Second

// pendingEdits counts the watcher's bursts of edits that are not reloaded
// yet. A burst is counted as its first event arrives, before the quiet
// window and the pack: a `docker run --pull=always` started right after
// a build then waits for the build's generation instead of racing it.
type pendingEdits struct {
	mu   sync.Mutex
	n    int
	done chan struct{} // closed once n is back to 0; nil while it is 0
}

// add counts a burst that started.
func (p *pendingEdits) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.done == nil {
		p.done = make(chan struct{})
	}
}

// reloaded discounts n bursts whose reload is done (or failed: the
// generation that serves is then the previous one, and waiting longer
// would not change that).
func (p *pendingEdits) reloaded(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n -= n
	if p.n <= 0 {
		p.n = 0
		if p.done != nil {
			close(p.done)
			p.done = nil
		}
	}
}

// forget drops every pending burst: the watcher stopped, and their
// Changes will not come.
func (p *pendingEdits) forget() { p.reloaded(int(^uint(0) >> 1)) }

// wait returns once no burst is pending, after max, or when ctx ends,
// whichever is first. It reports whether nothing was pending any more.
func (p *pendingEdits) wait(ctx context.Context, max time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
