package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/api"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// errUnexpected is a fake's answer to a call its test did not set up.
var errUnexpected = errors.New("fake: unexpected call")

// fakeProxy is the manifest, blob and tag source of a handler under test:
// each answer is the test's, and every call is counted, so that a test can
// say a request never reached the proxy.
type fakeProxy struct {
	manifest  func(repo proxy.Repo, ref proxy.Ref) (proxy.Served, error)
	blob      func(repo proxy.Repo, d v1.Hash, method string) (*proxy.BlobAnswer, error)
	tags      func(repo proxy.Repo, rawQuery string) (*http.Response, error)
	referrers func(repo proxy.Repo, d v1.Hash, artifactType string) (proxy.Referrers, error)

	mu    sync.Mutex
	calls []string
}

func (f *fakeProxy) called(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, what)
}

func (f *fakeProxy) Get(_ context.Context, repo proxy.Repo, ref proxy.Ref) (proxy.Served, error) {
	f.called("Get " + repo.String())
	if f.manifest == nil {
		return proxy.Served{}, errUnexpected
	}
	return f.manifest(repo, ref)
}

func (f *fakeProxy) Rewrite(_ context.Context, repo proxy.Repo, _ proxy.Ref, _ proxy.Recipe) (proxy.Served, error) {
	f.called("Rewrite " + repo.String())
	return proxy.Served{}, errUnexpected
}

func (f *fakeProxy) Referrers(_ context.Context, repo proxy.Repo, d v1.Hash, artifactType string) (proxy.Referrers, error) {
	f.called("Referrers " + repo.String())
	if f.referrers == nil {
		return proxy.Referrers{}, errUnexpected
	}
	return f.referrers(repo, d, artifactType)
}

func (f *fakeProxy) Open(_ context.Context, repo proxy.Repo, d v1.Hash, method, _ string) (*proxy.BlobAnswer, error) {
	f.called("Open " + repo.String())
	if f.blob == nil {
		return nil, errUnexpected
	}
	return f.blob(repo, d, method)
}

func (f *fakeProxy) Wait() {}

func (f *fakeProxy) Tags(_ context.Context, repo proxy.Repo, rawQuery string) (*http.Response, error) {
	f.called("Tags " + repo.String())
	if f.tags == nil {
		return nil, errUnexpected
	}
	return f.tags(repo, rawQuery)
}

// answer is one request's answer and the events it published.
type answer struct {
	*httptest.ResponseRecorder
	events []event.Event
}

// serveFake answers one request with a registry over f, whose names
// without a host live on docker.io.
func serveFake(t *testing.T, f *fakeProxy, method, path string) answer {
	t.Helper()
	bus := event.NewBus(time.Now)
	sub := bus.Subscribe(16)
	defer sub.Close()
	reg := api.NewRegistry(f, f, f, "docker.io", bus, slog.New(slog.DiscardHandler))
	w := httptest.NewRecorder()
	reg.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), method, path, nil))
	a := answer{ResponseRecorder: w}
	// The handler publishes before it returns: what it published is in
	// the subscription's buffer now.
	for {
		select {
		case e := <-sub.C():
			a.events = append(a.events, untimed(e))
		default:
			return a
		}
	}
}

// untimed is e without its clock readings, which a test cannot predict.
func untimed(e event.Event) event.Event {
	switch e := e.(type) {
	case event.ManifestServed:
		e.Time, e.Duration = time.Time{}, 0
		return e
	case event.BlobServed:
		e.Time, e.Duration = time.Time{}, 0
		return e
	case event.BlobStarted:
		e.Time = time.Time{}
		return e
	}
	return e
}

// imageManifest is an image manifest whose config is cfg, served as mt.
func imageManifest(t *testing.T, mt types.MediaType, cfg v1.Hash) proxy.Manifest {
	t.Helper()
	b := []byte(`{"schemaVersion":2,"mediaType":"` + string(mt) + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cfg.String() + `","size":2},"layers":[]}`)
	return proxy.Manifest{Bytes: b, MediaType: mt, Digest: digestOf(t, string(b))}
}

func digestOf(t *testing.T, s string) v1.Hash {
	t.Helper()
	d, _, err := v1.SHA256(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// jsonAnswer is an upstream's JSON answer, as Upstream.Tags returns it.
func jsonAnswer(body string, hdr http.Header) *http.Response {
	if hdr == nil {
		hdr = http.Header{}
	}
	return &http.Response{StatusCode: http.StatusOK, Header: hdr, Body: io.NopCloser(bytes.NewReader([]byte(body)))}
}
