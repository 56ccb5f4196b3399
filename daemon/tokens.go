package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/daemon/token"
	"github.com/tower-reg/tower-reg/layer"
)

// recGeneration keeps a generation's layer set by ID, for the tokens that
// pin it: the reloader forgets generations, tokens must not.
const recGeneration = "generation"

// purgeEvery is how often expired tokens are purged and pull counts saved.
const purgeEvery = time.Minute

// tokens is the container token service: it issues tokens (resolving the
// image, fetching the layers) and resolves them for the registry.
type tokens struct {
	store   *token.Store
	blobs   *store.Store
	rw      *proxy.Rewriting
	layers  proxy.Layers
	fetcher *fetch.Fetcher
	ttl     time.Duration
	defReg  string
	host    func() string
	bus     *event.Bus
	log     *slog.Logger
	// upload takes a token's layers to the offload store: they are blobs
	// the daemon serves itself, as the injected layers are. Nil means no
	// offload store.
	upload proxy.Uploader

	mu    sync.Mutex
	unpin map[string]func() // by a token's short form and expiry: its blobs kept from GC
}

var _ api.Tokens = (*tokens)(nil)

// pinKey identifies a record for unpinning; the short form alone may be
// shared by two tokens.
func pinKey(r token.Record) string { return r.Short + " " + r.Expires.String() }

// pinAll keeps the blobs of every live token through GC.
func (t *tokens) pinAll() {
	for _, r := range t.store.List() {
		if r.Expires.After(t.bus.Now()) {
			t.pin(r)
			// The offload's states do not outlive the daemon: a live
			// token's layers are looked for, or uploaded, again.
			t.offload(r)
		}
	}
}

func (t *tokens) pin(r token.Record) {
	var hs []v1.Hash
	for _, l := range r.Layers {
		hs = append(hs, l.GzipDigest)
	}
	if r.Generation != "" {
		var set layer.Set
		if err := t.blobs.GetRecord(recGeneration, r.Generation, &set); err == nil {
			hs = append(hs, set.Common.GzipDigest)
			for _, b := range set.Platforms {
				hs = append(hs, b.GzipDigest)
			}
		}
	}
	unpinBlobs := t.blobs.Pin(hs...)
	unpin := unpinBlobs
	if r.Generation != "" {
		// The record too: Resolve needs it for as long as the token lives,
		// and GC collects records like blobs.
		unpinRecord, err := t.blobs.PinRecord(recGeneration, r.Generation)
		if err != nil {
			t.log.Warn("pin the generation of a container token", "token", r.Short, "error", err)
			unpinRecord = func() {}
		}
		unpin = func() { unpinBlobs(); unpinRecord() }
	}
	t.mu.Lock()
	t.unpin[pinKey(r)] = unpin
	t.mu.Unlock()
}

// offload starts uploading r's own layers to the offload store, in the
// background: until they are there, public pulls stream them. A token of
// a layer generation has none; the generation's are uploaded with it.
func (t *tokens) offload(r token.Record) {
	if t.upload == nil || len(r.Layers) == 0 {
		return
	}
	ds := make([]v1.Hash, 0, len(r.Layers))
	for _, l := range r.Layers {
		ds = append(ds, l.GzipDigest)
	}
	t.upload.Upload(ds...)
}

// Issue implements api.Tokens.
func (t *tokens) Issue(ctx context.Context, req token.Request) (token.Response, error) {
	ref, err := name.ParseReference(req.ContainerImage, name.WithDefaultRegistry(t.defReg))
	if err != nil {
		return token.Response{}, &token.FieldError{Field: "containerImage", Err: err}
	}
	repo, err := proxy.ParseRepo(ref.Context().RegistryStr()+"/"+ref.Context().RepositoryStr(), t.defReg)
	if err != nil {
		return token.Response{}, &token.FieldError{Field: "containerImage", Err: err}
	}
	pref, err := proxy.ParseRef(ref.Identifier())
	if err != nil {
		return token.Response{}, &token.FieldError{Field: "containerImage", Err: err}
	}
	desc, err := t.rw.Resolve(ctx, repo, pref)
	if err != nil {
		return token.Response{}, &api.ImageError{Image: req.ContainerImage, Err: err}
	}
	rec := token.Record{Image: token.Upstream{
		Registry: repo.Registry, Repository: repo.Path, Reference: ref.Identifier(), Digest: desc.Digest,
	}}
	cc := req.ContainerConfig
	if cc != nil && (cc.Entrypoint != nil || cc.Cmd != nil || cc.Env != nil || cc.WorkingDir != "") {
		rec.Config = &token.Overrides{Entrypoint: cc.Entrypoint, Cmd: cc.Cmd, Env: cc.Env, WorkingDir: cc.WorkingDir}
	}
	if cc != nil && len(cc.Layers) > 0 {
		for i, l := range cc.Layers {
			b, err := t.fetcher.Fetch(ctx, l, t.blobs)
			if err != nil {
				return token.Response{}, &token.FieldError{Field: fmt.Sprintf("containerConfig.layers[%d]", i), Err: err}
			}
			rec.Layers = append(rec.Layers, b)
		}
	} else {
		// No layers: the token pins the layer generation of today, so the
		// name keeps pulling the same layer after a reload.
		g := t.layers.Current()
		if err := t.blobs.PutRecord(ctx, recGeneration, g.ID, g.Set); err != nil {
			return token.Response{}, err
		}
		rec.Generation = g.ID
	}
	tok, rec, err := t.store.Issue(ctx, rec, t.ttl)
	if err != nil {
		return token.Response{}, err
	}
	t.pin(rec)
	t.offload(rec)
	resp := token.NewResponse(t.host(), tok, rec)
	gen := 0
	if rec.Generation != "" {
		gen = t.layers.Current().Number
	}
	t.bus.Publish(event.TokenIssued{Meta: event.Meta{Time: t.bus.Now()}, Token: tok.String(),
		Image: req.ContainerImage, TargetImage: token.TargetImage(t.host(), token.Token(tok.String()), rec.Image.Repository, rec.Image.Reference),
		Expires: rec.Expires, Layers: len(rec.Layers), Generation: gen})
	return resp, nil
}

// Resolve implements api.Tokens.
func (t *tokens) Resolve(tok string) (api.TokenImage, error) {
	rec, err := t.store.Lookup(tok)
	if err != nil {
		return api.TokenImage{}, err
	}
	img := api.TokenImage{
		Short:  rec.Short,
		Repo:   proxy.Repo{Registry: rec.Image.Registry, Path: rec.Image.Repository},
		Digest: rec.Image.Digest,
	}
	var ch layer.Change
	if c := rec.Config; c != nil {
		ch = layer.Change{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir}
	}
	if rec.Generation != "" {
		var set layer.Set
		if err := t.blobs.GetRecord(recGeneration, rec.Generation, &set); err != nil {
			return api.TokenImage{}, fmt.Errorf("container token %s: its layer generation is gone: %w", rec.Short, err)
		}
		r := proxy.Generation{ID: rec.Generation, Set: set}.Recipe()
		if rec.Config != nil {
			// The generation's layer with the token's changes: a recipe of
			// its own, cached apart from the plain generation's.
			r, err = proxy.NewRecipeForSet(set, ch)
			if err != nil {
				return api.TokenImage{}, err
			}
		}
		img.Recipe = r
		return img, nil
	}
	img.Recipe, err = proxy.NewRecipe(rec.Layers, ch)
	return img, err
}

// CountPull implements api.Tokens.
func (t *tokens) CountPull(tok string) {
	if _, err := t.store.CountPull(tok); err != nil && !errors.Is(err, token.ErrUnknown) && !errors.Is(err, token.ErrExpired) {
		t.log.Warn("count a token pull", "error", err)
	}
}

// run purges expired tokens and saves pull counts until ctx ends.
func (t *tokens) run(ctx context.Context) error {
	tick := time.NewTicker(purgeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Serve saves the counts once more with flush, once the
			// pulls in flight are done.
			return nil
		case <-tick.C:
			t.purge(ctx)
		}
	}
}

// flush saves the pull counts, on the daemon's way out.
func (t *tokens) flush(ctx context.Context) error {
	if err := t.store.Flush(ctx); err != nil {
		return fmt.Errorf("save token pull counts: %w", err)
	}
	return nil
}

func (t *tokens) purge(ctx context.Context) {
	expired, err := t.store.Purge(ctx)
	if err != nil {
		t.log.Warn("purge expired tokens", "error", err)
	}
	for _, r := range expired {
		t.mu.Lock()
		if unpin, ok := t.unpin[pinKey(r)]; ok {
			unpin()
			delete(t.unpin, pinKey(r))
		}
		t.mu.Unlock()
		img := r.Image.Registry + "/" + r.Image.Repository + ":" + r.Image.Reference
		t.bus.Publish(event.TokenExpired{Meta: event.Meta{Time: t.bus.Now()}, Token: r.Short, Image: img, Expired: r.Expires})
	}
}
