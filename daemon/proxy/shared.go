package proxy

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// shared runs fn once for all the callers of key at a time. The work is
// shared, so it must not die with the caller that happened to start it: it
// runs on a context of its own, which keeps ctx's values, bounded by
// timeout. Each caller waits only as long as its own ctx lasts.
func shared[T any](ctx context.Context, g *singleflight.Group, key string, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return fn(wctx)
	})
	select {
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			var zero T
			return zero, res.Err
		}
		return res.Val.(T), nil
	}
}
