package offload

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// State is where a digest's upload is.
type State int

// States of an upload. Unknown is a digest never asked for.
const (
	Unknown State = iota
	Pending
	Uploaded
	Failed
)

func (s State) String() string {
	return [...]string{"unknown", "pending", "uploaded", "failed"}[s]
}

// Status is a digest's upload as last seen.
type Status struct {
	State State
	// Err is why it failed.
	Err error
	// Size is the blob's size, once it was opened.
	Size int64
}

// entry is a digest's upload; Offload.mu guards it.
type entry struct {
	state State
	err   error
	size  int64
	// ctx is the Upload's: a retry runs under it.
	ctx      context.Context
	failures int
	retryAt  time.Time
	// checked is when the object was last seen in the store.
	checked time.Time
}

// headTimeout bounds the check that Location makes once per Recheck: a
// store that does not answer costs a public pull that long, once, and
// then the blob streams until the backoff ends.
const headTimeout = 2 * time.Second

// Status returns d's upload.
func (o *Offload) Status(d v1.Hash) Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.states[d]; e != nil {
		return Status{State: e.state, Err: e.err, Size: e.size}
	}
	return Status{}
}

// Location returns a presigned GET URL of d in the store, valid for the
// configured presign_ttl, if d's upload completed and its object is still
// there; else ok is false and the caller serves d itself. It never fails
// a pull: whatever goes wrong is a no, and a warning.
//
// A failed upload whose backoff ended is started again here; an object
// gone from the store (a lifecycle rule expired it) is uploaded again.
func (o *Offload) Location(ctx context.Context, d v1.Hash) (string, bool) {
	o.mu.Lock()
	e := o.states[d]
	if e == nil {
		o.mu.Unlock()
		return "", false
	}
	switch {
	case e.state == Failed && time.Now().After(e.retryAt) && e.ctx.Err() == nil:
		o.startLocked(d, e)
		o.mu.Unlock()
		return "", false
	case e.state != Uploaded:
		o.mu.Unlock()
		return "", false
	case time.Since(e.checked) < o.recheck:
		o.mu.Unlock()
		return o.presign(ctx, d)
	}
	o.mu.Unlock()
	if !o.recheckObject(ctx, d) {
		return "", false
	}
	return o.presign(ctx, d)
}

// recheckObject looks for d's object again, and reports whether it is
// there. Checks of d made at the same time are one request to the store;
// a caller whose client goes away stops waiting for it, and the others
// still get its answer.
func (o *Offload) recheckObject(ctx context.Context, d v1.Hash) bool {
	ch := o.rechecks.DoChan(d.String(), func() (any, error) {
		return o.recheckOnce(context.WithoutCancel(ctx), d), nil
	})
	select {
	case r := <-ch:
		return r.Val.(bool)
	case <-ctx.Done():
		return false
	}
}

// recheckOnce is recheckObject's request. An object gone is uploaded
// again; a store that fails is a failure like an upload's, retried after
// the backoff.
func (o *Offload) recheckOnce(ctx context.Context, d v1.Hash) bool {
	hctx, cancel := context.WithTimeout(ctx, headTimeout)
	defer cancel()
	have, err := o.stat(hctx, o.Key(d))
	o.mu.Lock()
	e := o.states[d]
	if e.state != Uploaded {
		// Another request's check got there first.
		o.mu.Unlock()
		return false
	}
	switch {
	case err != nil:
		o.failLocked(e, err)
		o.warnUnlock(d, err)
		return false
	case have != e.size:
		o.log.Info("an offloaded blob is gone from the store (a lifecycle rule?); uploading it again", "digest", d.String())
		if e.ctx.Err() == nil {
			o.startLocked(d, e)
		} else {
			o.failLocked(e, fmt.Errorf("s3://%s/%s is gone", o.bucket, o.Key(d)))
		}
		o.mu.Unlock()
		return false
	}
	e.checked = time.Now()
	o.mu.Unlock()
	return true
}

// presign signs a GET of d's object: a computation, with no request to the
// store once the region is known.
func (o *Offload) presign(ctx context.Context, d v1.Hash) (string, bool) {
	u, err := o.client.PresignedGetObject(ctx, o.bucket, o.Key(d), o.ttl, nil)
	if err != nil {
		o.log.Debug("cannot presign an offloaded blob; it streams", "digest", d.String(), "error", err)
		return "", false
	}
	return u.String(), true
}

// Off is the Locator of no offload store: every blob streams.
type Off struct{}

// Location implements Locator.
func (Off) Location(context.Context, v1.Hash) (string, bool) { return "", false }

var _ Locator = Off{}
