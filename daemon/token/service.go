package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/store"
	"github.com/tower-reg/tower-reg/layer"
)

// recGeneration keeps a generation's layer set by ID, for the tokens that
// pin it: the reloader forgets generations, tokens must not.
const recGeneration = "generation"

// purgeEvery is how often expired tokens are purged and pull counts saved.
const purgeEvery = time.Minute

// Resolver finds the digest of an upstream image: the developer's
// rewriting proxy, which also caches what it found.
type Resolver interface {
	Resolve(ctx context.Context, repo proxy.Repo, ref proxy.Ref) (v1.Descriptor, error)
}

// ServiceOptions are what a Service is built from.
type ServiceOptions struct {
	// Store keeps the tokens; Blobs keeps their layers and the layer
	// generations they pin.
	Store *Store
	Blobs *store.Store
	// Resolver resolves a request's image; Layers gives the generation a
	// token without layers pins.
	Resolver Resolver
	Layers   proxy.Layers
	Fetcher  *fetch.Fetcher
	TTL      time.Duration
	// DefaultRegistry completes an image named without a registry.
	DefaultRegistry string
	// Host is the host of a token's targetImage, asked at each issue.
	Host func() string
	Bus  *event.Bus
	Log  *slog.Logger
	// Upload takes a token's layers to the offload store: they are blobs
	// the daemon serves itself, as the injected layers are. Nil means no
	// offload store.
	Upload proxy.Uploader
}

// Service is the container token service: it issues tokens (resolving the
// image, fetching the layers) and resolves them for the registry.
type Service struct {
	store   *Store
	blobs   *store.Store
	rw      Resolver
	layers  proxy.Layers
	fetcher *fetch.Fetcher
	ttl     time.Duration
	defReg  string
	host    func() string
	bus     *event.Bus
	log     *slog.Logger
	upload  proxy.Uploader

	mu    sync.Mutex
	unpin map[string]func() // by a token's short form and expiry: its blobs kept from GC
}

// NewService returns the service of o.Store's tokens, with the blobs of
// every live one pinned, and their layers on their way to the offload
// store: the store's GC may run as soon as it returns.
func NewService(o ServiceOptions) *Service {
	t := &Service{
		store: o.Store, blobs: o.Blobs, rw: o.Resolver, layers: o.Layers, fetcher: o.Fetcher,
		ttl: o.TTL, defReg: o.DefaultRegistry, host: o.Host, bus: o.Bus, log: o.Log, upload: o.Upload,
		unpin: map[string]func(){},
	}
	t.pinAll()
	return t
}

// Image is what a container token pulls: one upstream image, by digest,
// rewritten by a recipe.
type Image struct {
	Short  string
	Repo   proxy.Repo
	Digest v1.Hash
	Recipe proxy.Recipe
}

// ImageError is a token request whose image could not be resolved.
type ImageError struct {
	Image string
	Err   error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("containerImage %s: %v", e.Image, e.Err)
}

func (e *ImageError) Unwrap() error { return e.Err }

// pinKey identifies a record for unpinning; the short form alone may be
// shared by two tokens.
func pinKey(r Record) string { return r.Short + " " + r.Expires.String() }

// pinAll keeps the blobs of every live token through GC.
func (t *Service) pinAll() {
	for _, r := range t.store.List() {
		if r.Expires.After(t.bus.Now()) {
			t.pin(r)
			// The offload's states do not outlive the daemon: a live
			// token's layers are looked for, or uploaded, again.
			t.offload(r)
		}
	}
}

func (t *Service) pin(r Record) {
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
func (t *Service) offload(r Record) {
	if t.upload == nil || len(r.Layers) == 0 {
		return
	}
	ds := make([]v1.Hash, 0, len(r.Layers))
	for _, l := range r.Layers {
		ds = append(ds, l.GzipDigest)
	}
	t.upload.Upload(ds...)
}

// Issue resolves the request's image, fetches its layers and issues a
// token; a request refused for one field is a *FieldError, an image that
// does not resolve an *ImageError.
func (t *Service) Issue(ctx context.Context, req Request) (Response, error) {
	ref, err := name.ParseReference(req.ContainerImage, name.WithDefaultRegistry(t.defReg))
	if err != nil {
		return Response{}, &FieldError{Field: "containerImage", Err: err}
	}
	repo, err := proxy.ParseRepo(ref.Context().RegistryStr()+"/"+ref.Context().RepositoryStr(), t.defReg)
	if err != nil {
		return Response{}, &FieldError{Field: "containerImage", Err: err}
	}
	pref, err := proxy.ParseRef(ref.Identifier())
	if err != nil {
		return Response{}, &FieldError{Field: "containerImage", Err: err}
	}
	desc, err := t.rw.Resolve(ctx, repo, pref)
	if err != nil {
		return Response{}, &ImageError{Image: req.ContainerImage, Err: err}
	}
	rec := Record{Image: Upstream{
		Registry: repo.Registry, Repository: repo.Path, Reference: ref.Identifier(), Digest: desc.Digest,
	}}
	cc := req.ContainerConfig
	rec.Config = cc.Change()
	if cc != nil && len(cc.Layers) > 0 {
		for i, l := range cc.Layers {
			b, err := t.fetcher.Fetch(ctx, l, t.blobs)
			if err != nil {
				return Response{}, &FieldError{Field: fmt.Sprintf("containerConfig.layers[%d]", i), Err: err}
			}
			rec.Layers = append(rec.Layers, b)
		}
	} else {
		// No layers: the token pins the layer generation of today, so the
		// name keeps pulling the same layer after a reload.
		g := t.layers.Current()
		if err := t.blobs.PutRecord(ctx, recGeneration, g.ID, g.Set); err != nil {
			return Response{}, err
		}
		rec.Generation = g.ID
	}
	tok, rec, err := t.store.Issue(ctx, rec, t.ttl)
	if err != nil {
		return Response{}, err
	}
	t.pin(rec)
	t.offload(rec)
	resp := NewResponse(t.host(), tok, rec)
	gen := 0
	if rec.Generation != "" {
		gen = t.layers.Current().Number
	}
	t.bus.Publish(event.TokenIssued{Meta: event.Meta{Time: t.bus.Now()}, Token: tok.String(),
		Image: req.ContainerImage, TargetImage: TargetImage(t.host(), Token(tok.String()), rec.Image.Repository, rec.Image.Reference),
		Expires: rec.Expires, Layers: len(rec.Layers), Generation: gen})
	return resp, nil
}

// Resolve finds what a token pulls; a token that is unknown or expired is
// ErrUnknown or ErrExpired.
func (t *Service) Resolve(tok string) (Image, error) {
	rec, err := t.store.Lookup(tok)
	if err != nil {
		return Image{}, err
	}
	img := Image{
		Short:  rec.Short,
		Repo:   proxy.Repo{Registry: rec.Image.Registry, Path: rec.Image.Repository},
		Digest: rec.Image.Digest,
	}
	var ch layer.Change
	if rec.Config != nil {
		ch = *rec.Config
	}
	if rec.Generation != "" {
		var set layer.Set
		if err := t.blobs.GetRecord(recGeneration, rec.Generation, &set); err != nil {
			return Image{}, fmt.Errorf("container token %s: its layer generation is gone: %w", rec.Short, err)
		}
		r := proxy.Generation{ID: rec.Generation, Set: set}.Recipe()
		if rec.Config != nil {
			// The generation's layer with the token's changes: a recipe of
			// its own, cached apart from the plain generation's.
			r, err = proxy.NewRecipeForSet(set, ch)
			if err != nil {
				return Image{}, err
			}
		}
		img.Recipe = r
		return img, nil
	}
	img.Recipe, err = proxy.NewRecipe(rec.Layers, ch)
	return img, err
}

// CountPull counts a pull through a token.
func (t *Service) CountPull(tok string) {
	if _, err := t.store.CountPull(tok); err != nil && !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrExpired) {
		t.log.Warn("count a token pull", "error", err)
	}
}

// Run purges expired tokens and saves pull counts until ctx ends.
func (t *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(purgeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// The daemon saves the counts once more with Flush, once the
			// pulls in flight are done.
			return nil
		case <-tick.C:
			t.purge(ctx)
		}
	}
}

// Flush saves the pull counts, on the daemon's way out.
func (t *Service) Flush(ctx context.Context) error {
	if err := t.store.Flush(ctx); err != nil {
		return fmt.Errorf("save token pull counts: %w", err)
	}
	return nil
}

func (t *Service) purge(ctx context.Context) {
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
