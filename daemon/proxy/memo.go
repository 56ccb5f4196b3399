package proxy

import "sync"

// memo is a small in-memory cache in front of the store, for the warm path
// of a pull by tag: one HEAD upstream, and no file read. It holds at most
// budget units (entries, or bytes) and forgets everything when full: the
// store still has it all, so forgetting costs a few file reads, never a
// wrong answer. Entries are immutable content keyed by digest.
type memo[V any] struct {
	mu     sync.Mutex
	m      map[string]V
	used   int
	budget int
	cost   func(V) int
}

func newMemo[V any](budget int, cost func(V) int) *memo[V] {
	return &memo[V]{m: map[string]V{}, budget: budget, cost: cost}
}

func (c *memo[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *memo[V]) put(k string, v V) {
	n := c.cost(v)
	if n > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if c.used+n > c.budget {
		clear(c.m)
		c.used = 0
	}
	c.m[k] = v
	c.used += n
}

// clear forgets everything.
func (c *memo[V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.used = 0
}
