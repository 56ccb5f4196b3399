package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/goleak"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/internal/faults"
	"github.com/tower-reg/tower-reg/internal/regtest"
)

// loadClients is how many clients pull at once.
const loadClients = 200

// loadDuration is how long TestLoad pulls: TOWERREG_SOAK (make soak: 60s)
// or a bounded default for the suite.
func loadDuration(t *testing.T) time.Duration {
	if s := os.Getenv("TOWERREG_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TOWERREG_SOAK=%q: %v", s, err)
		}
		return d
	}
	return 10 * time.Second
}

// rssKiB is this process's resident set, from /proc.
func rssKiB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Logf("no RSS: %v", err)
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// TestLoad: loadClients clients pull manifests and blobs of a few images,
// each blob checked against its digest, from a loopback upstream through
// the daemon served on a real listener. Zero errors; after the daemon
// stops, no goroutine is left (goleak). The latency percentiles, RSS and
// goroutine counts are logged (go test -v; make soak for 60 s).
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: not in -short")
	}
	leaks := goleak.IgnoreCurrent()
	goroutinesBefore, rssBefore := runtime.NumGoroutine(), rssKiB(t)

	reg := registry.New(registry.Logger(quiet))
	upstream := httptest.NewServer(reg)
	e := &env{upstream: upstream, count: regtest.NewCounter(reg), cacheDir: t.TempDir()}
	const images = 4
	for i := range images {
		img := randomImageFor(t, "amd64", types.DockerManifestSchema2, v1.Config{Cmd: []string{strconv.Itoa(i)}})
		e.push(t, fmt.Sprintf("load/img%d", i), "latest", img)
	}

	d, err := daemon.New(t.Context(), daemon.Options{
		Config: config.Default(), CacheDir: e.cacheDir, StateDir: t.TempDir(), Layer: testLayer(), LayerSource: "test",
		Keychain: authn.NewMultiKeychain(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String() + "/v2/" + pathHost(upstream) + "/load/img"

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadClients, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}
	var (
		mu        sync.Mutex
		manifests []time.Duration
		blobs     []time.Duration
		errs      []string
		requests  atomic.Int64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		} else {
			errs[19] = "and more"
		}
	}
	get := func(url string, accept string) ([]byte, time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		took := time.Since(start)
		requests.Add(1)
		if err != nil {
			return nil, took, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, took, fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return b, took, nil
	}
	pull := func(i int) {
		b, took, err := get(fmt.Sprintf("%s%d/manifests/latest", base, i), string(types.DockerManifestSchema2))
		if err != nil {
			fail("manifest img%d: %v", i, err)
			return
		}
		var m v1.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			fail("manifest img%d: %v", i, err)
			return
		}
		mine := []time.Duration{took}
		var bl []time.Duration
		for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			body, took, err := get(fmt.Sprintf("%s%d/blobs/%s", base, i, desc.Digest), "")
			if err != nil {
				fail("blob %s of img%d: %v", desc.Digest, i, err)
				return
			}
			if got := digestOf(body); got != desc.Digest {
				fail("blob %s of img%d hashes to %s", desc.Digest, i, got)
				return
			}
			bl = append(bl, took)
		}
		mu.Lock()
		manifests = append(manifests, mine...)
		blobs = append(blobs, bl...)
		mu.Unlock()
	}

	dur := loadDuration(t)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	var peakGoroutines atomic.Int64
	for c := range loadClients {
		wg.Go(func() {
			for n := c; time.Now().Before(deadline); n++ {
				pull(n % images)
				g := int64(runtime.NumGoroutine())
				for p := peakGoroutines.Load(); g > p && !peakGoroutines.CompareAndSwap(p, g); p = peakGoroutines.Load() {
				}
			}
		})
	}
	wg.Wait()
	rssPeak := rssKiB(t)

	client.CloseIdleConnections()
	stop()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	upstream.Close()
	// The daemon's connections to the upstream close with it; goleak
	// retries while their goroutines wind down.
	goleak.VerifyNone(t, leaks)
	runtime.GC()

	for _, e := range errs {
		t.Error(e)
	}
	p := func(ds []time.Duration, q float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return ds[min(len(ds)-1, int(float64(len(ds))*q))]
	}
	t.Logf("load: %d clients for %v: %d requests (%.0f/s), %d pulls, %d errors", loadClients, dur, requests.Load(),
		float64(requests.Load())/dur.Seconds(), len(manifests), len(errs))
	t.Logf("load: manifest latency p50 %v p99 %v; blob p50 %v p99 %v", p(manifests, .5), p(manifests, .99), p(blobs, .5), p(blobs, .99))
	t.Logf("load: goroutines before %d, peak %d, after %d; RSS before %d MiB, at the end of the load %d MiB, after %d MiB",
		goroutinesBefore, peakGoroutines.Load(), runtime.NumGoroutine(), rssBefore>>10, rssPeak>>10, rssKiB(t)>>10)
	if len(manifests) == 0 {
		t.Fatal("no pull completed")
	}
}

// TestColdPullSingleflight: the same pull 100 times at once on a cold
// cache makes one upstream request for each manifest and config: one HEAD
// of the tag, one GET of the index, of each platform's manifest and of
// each config. The upstream holds the first HEAD until all 100 requests
// are in the daemon, so none of them can come late and ask again.
func TestColdPullSingleflight(t *testing.T) {
	const clients = 100
	reg := registry.New(registry.Logger(quiet))
	var arrived atomic.Int32
	allIn := make(chan struct{})
	var holdOnce sync.Once
	hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/latest") {
			holdOnce.Do(func() {
				select {
				case <-allIn:
					// Each request has arrived; give them the moment from the
					// handler's entry to the shared HEAD.
					time.Sleep(200 * time.Millisecond)
				case <-time.After(20 * time.Second):
					t.Error("the 100 requests did not all reach the daemon")
				}
			})
		}
		reg.ServeHTTP(w, r)
	})
	inj := faults.New(hold)
	upstream := httptest.NewServer(inj)
	t.Cleanup(upstream.Close)
	pushSrv := httptest.NewServer(reg)
	t.Cleanup(pushSrv.Close)
	e := &env{upstream: pushSrv, count: regtest.NewCounter(reg), cacheDir: t.TempDir()}
	amd := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	arm := randomImageFor(t, "arm64", types.OCIManifestSchema1, v1.Config{})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	e.push(t, "test/multi", "latest", idx)

	d := newDaemon(t, config.Default())
	h := d.Handler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == clients {
			close(allIn)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	url := proxy.URL + "/v2/" + pathHost(upstream) + "/test/multi/manifests/latest"
	digests := make(chan string, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
			digests <- resp.Header.Get("Docker-Content-Digest")
		})
	}
	wg.Wait()
	close(digests)
	first := ""
	for dg := range digests {
		if first == "" {
			first = dg
		}
		if dg != first {
			t.Fatalf("clients got different digests: %s and %s", first, dg)
		}
	}
	want := map[string]int{"HEAD manifest": 1, "GET manifest": 3, "GET blob": 2}
	for k, n := range want {
		if got := inj.Count(k); got != n {
			t.Errorf("%d upstream %s requests for %d concurrent pulls, want %d", got, k, clients, n)
		}
	}
}
