package daemon

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/offload"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
)

// offloader uploads each generation's layers to the offload store. A nil
// one is no offload configured.
type offloader struct {
	up *offload.Offload
	// ctx bounds the uploads: the daemon's lifetime, never the request
	// (a re-pack over the admin API) whose reload made the generation.
	ctx    context.Context
	cancel context.CancelFunc
}

// newOffloader returns the offload that o.Config asks for, nil if none.
func newOffloader(ctx context.Context, o Options, st *store.Store) (*offloader, error) {
	if !o.Config.Offload.On() {
		return nil, nil
	}
	up, err := offload.New(offload.Options{Config: o.Config.Offload, Blobs: st, Log: o.Log, Bus: o.Bus})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	return &offloader{up: up, ctx: ctx, cancel: cancel}, nil
}

// generation starts uploading g's layers, every platform's.
func (f *offloader) generation(g proxy.Generation) {
	if f == nil {
		return
	}
	ds := []v1.Hash{g.Set.Common.GzipDigest}
	for _, b := range g.Set.Platforms {
		ds = append(ds, b.GzipDigest)
	}
	f.up.Upload(f.ctx, ds...)
}

// Upload implements proxy.Uploader: it starts uploading blobs the store
// holds (upstream blobs that streamed, a container token's layers) under
// the daemon's lifetime, whatever request brought them.
func (f *offloader) Upload(ds ...v1.Hash) {
	if f == nil {
		return
	}
	f.up.Upload(f.ctx, ds...)
}

// stop cuts the uploads in flight and waits for them.
func (f *offloader) stop() {
	if f == nil {
		return
	}
	f.cancel()
	f.up.Wait()
}

// Offload is where the blob path asks whether a public client may be
// redirected for a blob: to the offload store, once the blob is there.
// Without an offload configured it always says no.
func (d *Daemon) Offload() offload.Locator {
	if d.offload == nil {
		return offload.Off{}
	}
	return d.offload.up
}
