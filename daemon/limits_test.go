package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// serveDaemon runs d on real loopback listeners, the local one and a
// public one, as towerreg-dev up does: http.Server's own limits apply.
func serveDaemon(t *testing.T, d *daemon.Daemon) (local, public string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln, pl) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), "http://" + pl.Addr().String()
}

func newDaemon(t *testing.T, cfg config.Config) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(t.Context(), daemon.Options{
		Config: cfg, CacheDir: t.TempDir(), StateDir: t.TempDir(), Layer: testLayer(), LayerSource: "test",
		Keychain: authn.NewMultiKeychain(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.WaitIdle) // before the cache dir is removed
	return d
}

// TestRequestSizeLimits: a URL over the limit is a 414 NAME_INVALID on
// every route of both handlers; a header block over http.Server's limit
// is refused before any handler runs.
func TestRequestSizeLimits(t *testing.T) {
	local, public := serveDaemon(t, newDaemon(t, config.Default()))
	long := strings.Repeat("a", 9000)
	tests := []struct {
		name, url  string
		header     string // a header of that many bytes, if not empty
		wantStatus int
		wantCode   string
	}{
		{"long manifest URL", local + "/v2/" + long + "/manifests/latest", "", http.StatusRequestURITooLong, "NAME_INVALID"},
		{"long blob URL, public", public + "/v2/library/x/blobs/sha256:" + long, "", http.StatusRequestURITooLong, "NAME_INVALID"},
		{"long query on an admin route", local + "/_towerreg/status?x=" + long, "", http.StatusRequestURITooLong, "NAME_INVALID"},
		{"URL at the limit passes the check", local + "/v2/" + strings.Repeat("a", 8000) + "/manifests/latest", "", http.StatusBadRequest, "NAME_INVALID"},
		{"huge header", local + "/v2/", strings.Repeat("h", 100<<10), http.StatusRequestHeaderFieldsTooLarge, ""},
		{"normal request", local + "/v2/", "", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tt.url, nil)
			if tt.header != "" {
				req.Header.Set("X-Big", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Errors []struct{ Code, Message string }
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %+v, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantCode != "" && (len(body.Errors) == 0 || body.Errors[0].Code != tt.wantCode) {
				t.Fatalf("errors %+v, want %s", body.Errors, tt.wantCode)
			}
		})
	}
}

// TestTokenRateLimit: past the configured rate, POST /container-token is
// a 429 TOOMANYREQUESTS that says when to come back.
func TestTokenRateLimit(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.TokenRequestsPerMinute = 3
	srv := httptest.NewServer(newDaemon(t, cfg).Handler())
	t.Cleanup(srv.Close)
	post := func() (*http.Response, []byte) {
		// An empty request: refused as a bad request once past the limit
		// check, which is all this test needs.
		resp, err := http.Post(srv.URL+"/container-token", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}
	for i := range 3 {
		if resp, b := post(); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("request %d of 3 refused: %s", i+1, b)
		}
	}
	resp, b := post()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `"TOOMANYREQUESTS"`) {
		t.Fatalf("4th request in a minute: %d %s, want 429 TOOMANYREQUESTS", resp.StatusCode, b)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 20 {
		t.Fatalf("Retry-After %q, want 1..20 seconds (3 a minute)", resp.Header.Get("Retry-After"))
	}
}

// TestUpstreamMaxConns: upstream.max_conns bounds the connections the
// daemon opens to one registry; the requests over it wait, and all
// succeed. Without the setting, the same load opens more: the test can
// tell.
func TestUpstreamMaxConns(t *testing.T) {
	tests := []struct {
		maxConns int
		check    func(t *testing.T, peak int)
	}{
		{2, func(t *testing.T, peak int) {
			if peak > 2 {
				t.Fatalf("%d connections to the upstream at once, limit 2", peak)
			}
		}},
		{0, func(t *testing.T, peak int) {
			if peak <= 2 {
				t.Fatalf("only %d connections at once with the default limit: the load does not tell", peak)
			}
		}},
	}
	for _, tt := range tests {
		t.Run("max_conns="+strconv.Itoa(tt.maxConns), func(t *testing.T) {
			reg := registry.New(registry.Logger(quiet))
			var mu sync.Mutex
			open, peak := 0, 0
			upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/blobs/") {
					time.Sleep(100 * time.Millisecond) // keep each connection busy
				}
				reg.ServeHTTP(w, r)
			}))
			upstream.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				mu.Lock()
				defer mu.Unlock()
				switch s {
				case http.StateNew:
					open++
					peak = max(peak, open)
				case http.StateClosed, http.StateHijacked:
					open--
				}
			}
			upstream.Start()
			t.Cleanup(upstream.Close)
			// Pushed through a server of its own, so that the upstream's
			// connections are the daemon's only.
			pushSrv := httptest.NewServer(reg)
			t.Cleanup(pushSrv.Close)
			e := &env{upstream: pushSrv, count: regtest.NewCounter(reg), cacheDir: t.TempDir()}
			img, err := random.Image(1024, 12)
			if err != nil {
				t.Fatal(err)
			}
			e.push(t, "test/img", "latest", img)

			cfg := config.Default()
			cfg.Upstream.MaxConns = tt.maxConns
			srv := httptest.NewServer(newDaemon(t, cfg).Handler())
			t.Cleanup(srv.Close)
			ls, _ := img.Layers()
			var wg sync.WaitGroup
			errs := make(chan string, len(ls))
			for _, l := range ls {
				d, _ := l.Digest()
				wg.Go(func() {
					a := getRaw(t, srv.URL+"/v2/"+pathHost(upstream)+"/test/img/blobs/"+d.String())
					if a.status != http.StatusOK || a.readErr != nil || digestOf(a.body) != d {
						errs <- d.String() + ": status " + strconv.Itoa(a.status)
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			mu.Lock()
			defer mu.Unlock()
			tt.check(t, peak)
		})
	}
}
