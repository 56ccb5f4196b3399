package offload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/singleflight"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// Locator is what the blob path asks of the offload before it serves a
// blob to a public client: a URL to redirect the client to, or ok=false,
// and the blob path streams the blob itself.
type Locator interface {
	Location(ctx context.Context, d v1.Hash) (url string, ok bool)
}

var _ Locator = (*Offload)(nil)

// Blobs is where uploads read from: the daemon's content store.
type Blobs interface {
	OpenBlob(h v1.Hash) (*os.File, error)
}

// Defaults of Options.
const (
	DefaultConcurrency = 2
	DefaultBackoff     = 5 * time.Second
	maxBackoff         = 5 * time.Minute
	// partSize bounds the memory of a multipart upload: minio-go holds a
	// buffer of this size per part in flight.
	partSize = 16 << 20
)

// Options are what an Offload is built from.
type Options struct {
	Config config.Offload
	Blobs  Blobs
	Log    *slog.Logger
	// Bus receives OffloadStatus events; nil means none.
	Bus *event.Bus
	// Concurrency bounds the uploads running at once; zero means
	// DefaultConcurrency. Each holds a file and a part buffer.
	Concurrency int
	// Recheck is how long an object seen in the store is trusted before
	// Location looks again; zero means the config's (offload.recheck).
	Recheck time.Duration
	// Backoff is the wait before a failed upload is tried again on a
	// request, doubled at each failure up to 5 minutes; zero means
	// DefaultBackoff. A new generation retries at once.
	Backoff time.Duration
}

// Offload uploads blobs to the store and locates them there.
type Offload struct {
	client                *minio.Client
	bucket, prefix        string
	ttl, recheck, backoff time.Duration
	blobs                 Blobs
	log                   *slog.Logger
	bus                   *event.Bus
	sem                   chan struct{}
	wg                    sync.WaitGroup
	// rechecks merges the checks of one digest that fall due together: a
	// cluster pulling at once asks the store once, not once a node.
	rechecks singleflight.Group

	mu     sync.Mutex
	states map[v1.Hash]*entry
	warned map[string]bool // failure kinds logged since the last success
}

// New returns the offload the config describes. It does not reach the
// store: a store that is down is a warning at the first upload, not a
// daemon that does not start.
func New(o Options) (*Offload, error) {
	bucket, prefix, err := config.ParseOffloadURL(o.Config.URL)
	if err != nil {
		return nil, fmt.Errorf("offload: %w", err)
	}
	client, err := newClient(o.Config)
	if err != nil {
		return nil, fmt.Errorf("offload: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Recheck <= 0 {
		o.Recheck = o.Config.RecheckEvery()
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if prefix != "" {
		prefix += "/"
	}
	return &Offload{
		client: client, bucket: bucket, prefix: prefix + "blobs/sha256/",
		ttl: o.Config.TTL(), recheck: o.Recheck, backoff: o.Backoff,
		blobs: o.Blobs, log: o.Log.With("offload", o.Config.URL), bus: o.Bus,
		sem: make(chan struct{}, o.Concurrency), states: map[v1.Hash]*entry{}, warned: map[string]bool{},
	}, nil
}

// newClient signs with the standard AWS credentials: the AWS_* variables,
// then the shared credentials file (AWS_PROFILE), so that no secret sits
// in the daemon's config.
func newClient(c config.Offload) (*minio.Client, error) {
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{}, &credentials.FileAWSCredentials{},
	})
	opts := &minio.Options{Creds: creds, Secure: true, Region: c.Region,
		// The offload retries on its own schedule; minio-go's ten
		// retries would hold an upload slot for a store that is down.
		MaxRetries: 2}
	host := "s3.amazonaws.com"
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("endpoint %q: %w", c.Endpoint, err)
		}
		host, opts.Secure = u.Host, u.Scheme == "https"
		// S3-compatible stores rarely have a name per bucket.
		opts.BucketLookup = minio.BucketLookupPath
		if opts.Region == "" {
			// Presigning needs a region; asking the store for it would
			// cost a request and fail on some.
			opts.Region = "us-east-1"
		}
	}
	return minio.New(host, opts)
}

// Key is the object key of d in the store.
func (o *Offload) Key(d v1.Hash) string { return o.prefix + d.Hex }

// Upload starts uploading each of digests in the background, unless it is
// uploading or uploaded; a failed one is tried again at once. ctx bounds
// the uploads and their later retries: pass the daemon's lifetime, not a
// request's.
func (o *Offload) Upload(ctx context.Context, digests ...v1.Hash) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range digests {
		e := o.states[d]
		if e == nil {
			e = &entry{}
			o.states[d] = e
		}
		e.ctx = ctx
		if e.state == Pending || e.state == Uploaded {
			continue
		}
		o.startLocked(d, e)
	}
}

// Wait waits for the uploads in flight.
func (o *Offload) Wait() { o.wg.Wait() }

// startLocked runs d's upload in the background; o.mu is held.
func (o *Offload) startLocked(d v1.Hash, e *entry) {
	e.state, e.err = Pending, nil
	ctx := e.ctx
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.finish(ctx, d, o.run(ctx, d))
	}()
}

func (o *Offload) run(ctx context.Context, d v1.Hash) result {
	select {
	case o.sem <- struct{}{}:
		defer func() { <-o.sem }()
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	size, err := o.put(ctx, d)
	return result{size: size, err: err}
}

type result struct {
	size int64
	err  error
}

// errExists is an object under a blob's key that is not the blob: it is
// not overwritten (the key is the digest, so someone else wrote it), and
// not handed out.
var errExists = errors.New("an object of another size is already there; it is not overwritten")

// put uploads d unless the store has it.
func (o *Offload) put(ctx context.Context, d v1.Hash) (int64, error) {
	f, err := o.blobs.OpenBlob(d)
	if err != nil {
		return 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	size, key := fi.Size(), o.Key(d)
	switch have, err := o.stat(ctx, key); {
	case err != nil:
		return size, err
	case have == size:
		return size, nil
	case have >= 0:
		return size, fmt.Errorf("s3://%s/%s: %d bytes, want %d: %w", o.bucket, key, have, size, errExists)
	}
	_, err = o.client.PutObject(ctx, o.bucket, key, f, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", PartSize: partSize, NumThreads: 1,
	})
	if err != nil {
		return size, fmt.Errorf("upload s3://%s/%s: %w", o.bucket, key, err)
	}
	return size, nil
}

// stat returns the size of the object at key, -1 if there is none.
func (o *Offload) stat(ctx context.Context, key string) (int64, error) {
	info, err := o.client.StatObject(ctx, o.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return info.Size, nil
	}
	if r := minio.ToErrorResponse(err); r.Code == minio.NoSuchKey || (r.StatusCode == 404 && r.Code != minio.NoSuchBucket) {
		return -1, nil
	}
	return 0, fmt.Errorf("stat s3://%s/%s: %w", o.bucket, key, err)
}

// finish records the outcome of d's upload, and reports a failure of a
// kind not reported since the last success.
func (o *Offload) finish(ctx context.Context, d v1.Hash, r result) {
	o.mu.Lock()
	e := o.states[d]
	e.size = r.size
	if r.err == nil {
		e.state, e.err, e.failures, e.checked = Uploaded, nil, 0, time.Now()
		recovered := len(o.warned) > 0
		clear(o.warned)
		o.mu.Unlock()
		if recovered {
			o.log.Info("the offload store works again", "digest", d.String())
		}
		o.publish(event.OffloadStatus{State: event.OffloadUploaded, Digest: d.String(), Bytes: r.size})
		return
	}
	o.failLocked(e, r.err)
	if ctx.Err() != nil || errors.Is(r.err, os.ErrNotExist) {
		// The daemon is stopping, or the blob left the content store (a
		// generation collected while its upload waited): not the
		// store's fault.
		o.mu.Unlock()
		o.log.Debug("offload upload stopped", "digest", d.String(), "error", r.err)
		return
	}
	o.warnUnlock(d, r.err)
}

// failLocked marks e failed and sets when a request may retry it.
func (o *Offload) failLocked(e *entry, err error) {
	e.state, e.err = Failed, err
	e.failures++
	wait := o.backoff << min(e.failures-1, 16)
	e.retryAt = time.Now().Add(min(wait, maxBackoff))
}

// warnUnlock logs and publishes err once per kind of failure, and unlocks
// o.mu, which the caller holds.
func (o *Offload) warnUnlock(d v1.Hash, err error) {
	kind := kindOf(err)
	first := !o.warned[kind]
	o.warned[kind] = true
	o.mu.Unlock()
	if !first {
		o.log.Debug("offload upload failed", "digest", d.String(), "kind", kind, "error", err)
		return
	}
	o.log.Warn("the offload store failed: public clients get the injected layers through this machine until it works",
		"digest", d.String(), "kind", kind, "error", err)
	o.publish(event.OffloadStatus{State: event.OffloadFailed, Digest: d.String(), Kind: kind, Err: err.Error()})
}

func (o *Offload) publish(e event.OffloadStatus) {
	if o.bus == nil {
		return
	}
	e.Time = o.bus.Now()
	o.bus.Publish(e)
}

// kindOf names err's kind of failure: the store's error code
// (AccessDenied, NoSuchBucket), or what went wrong on this side.
func kindOf(err error) string {
	var ue *url.Error
	var re minio.ErrorResponse
	switch {
	case errors.Is(err, errExists):
		return "ObjectExists"
	case errors.As(err, &re) && re.Code != "":
		return re.Code
	case errors.As(err, &ue):
		return "Unreachable"
	}
	if s := err.Error(); strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") {
		return "Unreachable"
	}
	return "Error"
}
