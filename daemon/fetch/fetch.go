package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/layer"
)

// Layer is where a layer is and what it must be: the JSON that
// `towerreg-dev pack` prints and that container-token requests carry.
type Layer struct {
	Location   string  `json:"location"`
	GzipDigest v1.Hash `json:"gzipDigest"`
	GzipSize   int64   `json:"gzipSize"`
	TarDigest  v1.Hash `json:"tarDigest"`
}

// Defaults for the zero Options.
const (
	// DefaultMaxSize bounds one layer's gzip size. Layers built for tokens
	// are tools and data added to an image, rarely more than a few hundred
	// MiB; 2 GiB leaves room for big toolchains while a wrong location
	// cannot fill the cache disk with one request.
	DefaultMaxSize = 2 << 30
	// DefaultTimeout bounds a whole fetch, body included: 2 GiB at about
	// 4 MB/s, a slow home line, and a hung transfer does not hold a token
	// request forever.
	DefaultTimeout = 10 * time.Minute
	// DefaultHeaderTimeout bounds the connection, TLS handshake and the wait
	// for response headers.
	DefaultHeaderTimeout = 30 * time.Second
	// DefaultMaxRedirects is enough for a CDN or a presigned-URL redirect and
	// stops loops early.
	DefaultMaxRedirects = 5
)

// Options tune a Fetcher. Zero fields take the defaults above.
type Options struct {
	MaxSize       int64
	Timeout       time.Duration
	HeaderTimeout time.Duration
	// MaxRedirects is how many redirects one fetch follows; negative means
	// none.
	MaxRedirects int
	// RootCAs verifies https hosts; nil means the system's roots.
	RootCAs *x509.CertPool
}

// Fetcher fetches layers. It is safe for concurrent use.
type Fetcher struct {
	opts   Options
	client *http.Client
}

// New returns a Fetcher with its own HTTP client.
func New(opts Options) *Fetcher {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.MaxRedirects == 0 {
		opts.MaxRedirects = DefaultMaxRedirects
	}
	f := &Fetcher{opts: opts}
	f.client = &http.Client{
		Transport: &http.Transport{
			// No Proxy: HTTP(S)_PROXY may carry credentials of their own,
			// and a loopback location must stay on loopback.
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: opts.HeaderTimeout}).DialContext,
			TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    opts.HeaderTimeout,
			ResponseHeaderTimeout:  opts.HeaderTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			// The digests are of the bytes as stored; transparent
			// decompression would hand us the tar instead.
			DisableCompression: true,
			// One layer is one long transfer: a kept-alive connection saves
			// nothing and would outlive the fetch.
			DisableKeepAlives: true,
		},
		CheckRedirect: f.checkRedirect,
		// Jar stays nil: no cookie set by one location reaches another.
	}
	return f
}

// Fetch fetches l with the default options. See Fetcher.Fetch.
func Fetch(ctx context.Context, l Layer, dst layer.Blobs) (layer.Built, error) {
	return New(Options{}).Fetch(ctx, l, dst)
}

// Fetch streams the layer at l.Location into dst and commits it under its
// gzip digest once its size and both digests matched l. A mismatch is a
// *MismatchError naming the field; nothing is committed then, nor on any
// other error. The returned Built describes the layer as the rewrite needs
// it, HasEntry and Files included.
func (f *Fetcher) Fetch(ctx context.Context, l Layer, dst layer.Blobs) (layer.Built, error) {
	u, err := parseLocation(l.Location)
	if err != nil {
		return layer.Built{}, err
	}
	where := redact(u)
	if err := f.checkLayer(l); err != nil {
		return layer.Built{}, fmt.Errorf("fetch %s: %w", where, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, f.opts.Timeout, errWholeTimeout)
	defer cancel()

	body, err := f.open(ctx, u, l.GzipSize)
	if err != nil {
		return layer.Built{}, fmt.Errorf("fetch %s: %w", where, f.timeout(ctx, err))
	}
	defer body.Close()

	w, err := dst.Create(ctx)
	if err != nil {
		return layer.Built{}, fmt.Errorf("fetch %s: %w", where, err)
	}
	defer w.Close() // discards the blob unless committed

	built, err := verify(ctx, body, l, w)
	if err != nil {
		return layer.Built{}, fmt.Errorf("fetch %s: %w", where, f.timeout(ctx, err))
	}
	if err := w.Commit(ctx, l.GzipDigest); err != nil {
		return layer.Built{}, fmt.Errorf("fetch %s: store: %w", where, err)
	}
	return built, nil
}

func (f *Fetcher) checkLayer(l Layer) error {
	for _, d := range []struct {
		field string
		h     v1.Hash
	}{{"gzipDigest", l.GzipDigest}, {"tarDigest", l.TarDigest}} {
		if d.h.Algorithm != "sha256" || len(d.h.Hex) != 64 {
			return fmt.Errorf("%s %q is not a sha256 digest", d.field, d.h.String())
		}
	}
	if l.GzipSize <= 0 {
		return fmt.Errorf("gzipSize %d: must be positive", l.GzipSize)
	}
	if l.GzipSize > f.opts.MaxSize {
		return fmt.Errorf("%w: gzipSize %d is above the limit of %d bytes", ErrTooLarge, l.GzipSize, f.opts.MaxSize)
	}
	return nil
}

var errWholeTimeout = errors.New("whole-fetch timeout")

// timeout turns the ways a slow host shows up into ErrTimeout, and leaves
// the caller's own cancellation as it is.
func (f *Fetcher) timeout(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errWholeTimeout) {
		return fmt.Errorf("%w: not done within %s", ErrTimeout, f.opts.Timeout)
	}
	if ctx.Err() != nil {
		// The caller's deadline or cancellation: theirs to report.
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no answer within %s", ErrTimeout, f.opts.HeaderTimeout)
	}
	return err
}

// open returns the body at u, failing early when its announced size already
// tells it is not size bytes.
func (f *Fetcher) open(ctx context.Context, u *url.URL, size int64) (io.ReadCloser, error) {
	if u.Scheme == "file" {
		return openFile(u.Path, size)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLocation, err)
	}
	req.Header.Set("User-Agent", "towerreg-dev")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error names the full URL, query included: unwrap it and
			// let the caller name the redacted location.
			err = ue.Err
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &StatusError{Code: resp.StatusCode, Status: resp.Status}
	}
	if resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, &MismatchError{Field: "gzipSize", Expected: strconv.FormatInt(size, 10), Actual: strconv.FormatInt(resp.ContentLength, 10) + " (Content-Length)"}
	}
	return resp.Body, nil
}

func openFile(path string, size int64) (io.ReadCloser, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrLocation, path)
	}
	if fi.Size() != size {
		fh.Close()
		return nil, &MismatchError{Field: "gzipSize", Expected: strconv.FormatInt(size, 10), Actual: strconv.FormatInt(fi.Size(), 10)}
	}
	return fh, nil
}

// checkRedirect applies the location rules to every hop, so a redirect can
// reach nothing that a location could not name itself, and keeps a remote
// host from bouncing the daemon onto a loopback service.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	max := max(f.opts.MaxRedirects, 0)
	if len(via) > max {
		return fmt.Errorf("%w: more than %d", ErrRedirects, max)
	}
	if err := checkHTTPURL(req.URL); err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	if dialpolicy.Loopback(req.URL.Hostname()) && !dialpolicy.Loopback(via[0].URL.Hostname()) {
		return fmt.Errorf("redirect: %w: %s redirected to loopback %s", ErrLocation, via[0].URL.Hostname(), req.URL.Hostname())
	}
	// Nothing sets these, but the client copies the first request's
	// headers onto each hop: make sure none can ever travel.
	req.Header.Del("Authorization")
	req.Header.Del("Cookie")
	return nil
}
