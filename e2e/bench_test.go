package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// The benchmarks measure whole pulls and requests through the proxy against
// the same thing done directly on the same upstream, in the same run, and
// report the ratio: the machines are noisy, a ratio much less so. `make
// bench` runs them.

const bigSize = 256 << 20

// BenchmarkPullBig copies a 256 MiB, 3-layer image with skopeo, directly,
// through the proxy and through distribution's own pull-through cache in
// turn, and reports proxy/direct and distribution/direct. After the first
// pull both serve the layers from their store: this is the repeated pull,
// the common one; BenchmarkPullBigCold measures the first.
func BenchmarkPullBig(b *testing.B) {
	sk := newSkopeo(b)
	u := startUpstream(b)
	d := startDaemon(b, "--default-registry", u.Host)
	dist := startPullThrough(b, u)
	u.push(b, "test/big:latest", bigImage(b, 3, bigSize, 1))
	pull := func(ref string) time.Duration { return timedPull(b, sk, ref) }
	// One pull each first: the proxy's rewrite happens once per upstream
	// digest, distribution's cache fills, and the page cache should hold
	// the upstream's blobs for all three.
	pull(u.ref("test/big:latest"))
	pull(d.ref("test/big:latest"))
	pull(dist.ref("test/big:latest"))

	var direct, proxied, distributed time.Duration
	b.SetBytes(bigSize)
	b.ResetTimer()
	for b.Loop() {
		direct += pull(u.ref("test/big:latest"))
		proxied += pull(d.ref("test/big:latest"))
		distributed += pull(dist.ref("test/big:latest"))
	}
	reportPulls(b, direct, proxied, distributed)
}

// startPullThrough starts distribution's own pull-through cache of u, what
// users would run instead of the proxy: a second docker-registry with
// proxy.remoteurl, its own filesystem store, no credentials.
func startPullThrough(tb testing.TB, u *upstream) *upstream {
	tb.Helper()
	return startRegistry(tb, fmt.Sprintf("proxy:\n  remoteurl: http://%s\n", u.Host))
}

// reportPulls reports the mean pull times of the three ways, and the
// ratios to the direct pull.
func reportPulls(b *testing.B, direct, proxied, distributed time.Duration) {
	b.Helper()
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()/n, "direct-s/pull")
	b.ReportMetric(proxied.Seconds()/n, "proxy-s/pull")
	b.ReportMetric(distributed.Seconds()/n, "distribution-s/pull")
	b.ReportMetric(proxied.Seconds()/direct.Seconds(), "proxy/direct")
	b.ReportMetric(distributed.Seconds()/direct.Seconds(), "distribution/direct")
}

// timedPull copies ref into a new OCI layout with skopeo (extra: more
// flags), removes it, and returns how long the copy took.
func timedPull(b *testing.B, sk *skopeo, ref string, extra ...string) time.Duration {
	b.Helper()
	start := time.Now()
	dir := sk.copyToOCI(b, ref, false, extra...)
	took := time.Since(start)
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	return took
}

// BenchmarkPullBigCold is BenchmarkPullBig for an image neither cache has
// seen: each iteration pushes a new one, pulls it directly (which also
// puts it in the page cache), then through the proxy, which streams every
// blob from the upstream, checks it and keeps it, and through
// distribution's pull-through cache, which does the same; the two
// take turns going first, so that neither always pays for the other's
// writeback.
func BenchmarkPullBigCold(b *testing.B) {
	sk := newSkopeo(b)
	u := startUpstream(b)
	d := startDaemon(b, "--default-registry", u.Host)
	dist := startPullThrough(b, u)
	pull := func(ref string) time.Duration { return timedPull(b, sk, ref) }
	var direct, proxied, distributed time.Duration
	b.SetBytes(bigSize)
	i := uint64(0)
	for b.Loop() {
		b.StopTimer()
		i++
		repo := fmt.Sprintf("test/cold%d:latest", i)
		u.push(b, repo, bigImage(b, 3, bigSize, 100+i))
		b.StartTimer()
		direct += pull(u.ref(repo))
		if i%2 == 1 {
			proxied += pull(d.ref(repo))
			distributed += pull(dist.ref(repo))
		} else {
			distributed += pull(dist.ref(repo))
			proxied += pull(d.ref(repo))
		}
	}
	reportPulls(b, direct, proxied, distributed)
}

// BenchmarkPublicPull is issue 13's public pull: an anonymous skopeo copies
// a 256 MiB, 3-layer image from the S3-backed upstream (blob GETs answer 307
// to presigned URLs on its versitygw) through the daemon's public listener,
// with the byte-counting relay in front of it, against a direct pull of
// the same image from the upstream, in turn. It reports the pull times,
// public/direct, and the bytes the daemon sent per pull.
//
//   - redirect, stream: blobs.public as named; the relay has no limit.
//   - offload: redirect, and the daemon's own layer comes from an offload
//     store (a second versitygw) too: only manifests and configs cross.
//   - uplink-10MiB/...: the relay holds the daemon's side to 10 MiB/s, a
//     home uplink, which only what crosses the developer's machine pays.
func BenchmarkPublicPull(b *testing.B) {
	u := startS3Upstream(b)
	const repo = "test/big:latest"
	img := bigImage(b, 3, bigSize, 1)
	u.push(b, repo, img)
	base, baseTotal := layerSizes(b, img)
	sk := newSkopeo(b)
	anon := []string{"--src-authfile", filepath.Join(b.TempDir(), "anonymous.json")} // no such file
	for _, m := range []struct {
		name    string
		mode    string // blobs.public
		offload bool   // with an offload store
		rate    int64  // the relay's limit, bytes/s; 0: none
	}{
		{"redirect", "redirect", false, 0},
		{"offload", "redirect", true, 0},
		{"stream", "stream", false, 0},
		{"uplink-10MiB/redirect", "redirect", false, 10 << 20},
		{"uplink-10MiB/offload", "redirect", true, 10 << 20},
		{"uplink-10MiB/stream", "stream", false, 10 << 20},
	} {
		b.Run(m.name, func(b *testing.B) {
			yml := publicRedirectConfig(u) + "blobs:\n  public: " + m.mode + "\n"
			var store offloadStore
			if m.offload {
				store = startOffloadStore(b)
				yml += store.yaml("")
			}
			d, r := startPublic(b, yml, m.rate)
			if m.offload {
				// The daemon uploads its layer in the background and
				// streams it until then: time the pulls that follow.
				store.waitOwnUploaded(b, d, hostPath(u.Host)+"/"+strings.TrimSuffix(repo, ":latest"), base)
			}
			direct, public := u.ref(repo), r.Addr+"/"+hostPath(u.Host)+"/"+repo
			// One pull each first, the daemon's past the relay's limit: the
			// rewrite happens once per upstream digest, and the page cache
			// should hold the bucket's objects for both.
			timedPull(b, sk, direct)
			timedPull(b, sk, r.target+"/"+hostPath(u.Host)+"/"+repo, anon...)

			var directTime, publicTime time.Duration
			_, down0 := r.counts()
			b.SetBytes(bigSize)
			b.ResetTimer()
			for b.Loop() {
				directTime += timedPull(b, sk, direct)
				publicTime += timedPull(b, sk, public, anon...)
			}
			b.StopTimer()
			_, down := r.counts()
			perPull := float64(down-down0) / float64(b.N)
			if m.mode == "stream" && perPull < float64(baseTotal) {
				b.Fatalf("streaming sent %.0f bytes per pull, less than the %d bytes of base layers: the relay missed the pull", perPull, baseTotal)
			}
			b.ReportMetric(directTime.Seconds()/float64(b.N), "direct-s/pull")
			b.ReportMetric(publicTime.Seconds()/float64(b.N), "public-s/pull")
			b.ReportMetric(publicTime.Seconds()/directTime.Seconds(), "public/direct")
			b.ReportMetric(perPull, "daemon-B/pull")
		})
	}
}

// BenchmarkManifestWarm GETs a manifest by tag, directly and through a
// warm proxy, alternating, and reports the ratio of the medians.
func BenchmarkManifestWarm(b *testing.B) {
	u, _, d := startProxy(b)
	client := &http.Client{}
	get := func(url string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", url, resp.Status)
		}
		return time.Since(start)
	}
	directURL := "http://" + u.Host + "/v2/" + repoName(repoBusybox) + "/manifests/latest"
	proxyURL := d.url("/v2/" + repoName(repoBusybox) + "/manifests/latest")
	get(proxyURL) // the rewrite, once
	var direct, proxied []time.Duration
	for b.Loop() {
		for range 50 {
			direct = append(direct, get(directURL))
			proxied = append(proxied, get(proxyURL))
		}
	}
	dp, pp := median(direct), median(proxied)
	b.ReportMetric(float64(dp.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(pp.Microseconds()), "proxy-p50-µs")
	b.ReportMetric(float64(pp)/float64(dp), "p50-proxy/direct")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// repoName strips the tag from a fixture's repo:tag.
func repoName(repoTag string) string { return strings.SplitN(repoTag, ":", 2)[0] }

// countingUpstream is a reverse proxy that counts the requests the daemon
// makes to the real upstream, and how many overlap.
type countingUpstream struct {
	srv               *httptest.Server
	mu                sync.Mutex
	reqs              []string
	inflight, maxSeen atomic.Int32
}

func newCountingUpstream(tb testing.TB, target string) *countingUpstream {
	c := &countingUpstream{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.inflight.Add(1)
		defer c.inflight.Add(-1)
		for m := c.maxSeen.Load(); n > m && !c.maxSeen.CompareAndSwap(m, n); m = c.maxSeen.Load() {
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		// A little latency, as a real registry has, so that requests
		// made concurrently are seen to overlap.
		time.Sleep(20 * time.Millisecond)
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(c.srv.Close)
	return c
}

func (c *countingUpstream) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	c.maxSeen.Store(0)
	return r
}

// BenchmarkIndexCold GETs a two-platform index through a cold proxy (a new
// daemon, stopped at cleanup, each time) and reports how many upstream requests that took and
// how many of them ran at once.
func BenchmarkIndexCold(b *testing.B) {
	u, _ := startUpstreamWithImages(b)
	cu := newCountingUpstream(b, u.Host)
	host := strings.TrimPrefix(cu.srv.URL, "http://")
	var total, overlap int
	for b.Loop() {
		b.StopTimer()
		d := startDaemon(b, "--default-registry", host)
		cu.take()
		b.StartTimer()
		resp, _ := do(b, http.MethodGet, d.url("/v2/"+repoName(repoMulti)+"/manifests/latest"))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("cold index GET: %s", resp.Status)
		}
		b.StopTimer()
		overlap = max(overlap, int(cu.maxSeen.Load()))
		reqs := cu.take()
		total += len(reqs)
		if b.N == 1 || total == len(reqs) {
			b.Logf("upstream requests for one cold index GET: %d: %s", len(reqs), strings.Join(reqs, ", "))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/float64(b.N), "upstream-reqs/op")
	b.ReportMetric(float64(overlap), "max-concurrent")
}

// BenchmarkStreamRSS streams a 256 MiB blob to 4 clients at once through
// the proxy and reports the daemon's peak resident memory.
func BenchmarkStreamRSS(b *testing.B) {
	u := startUpstream(b)
	d := startDaemon(b, "--default-registry", u.Host)
	img := bigImage(b, 1, bigSize, 2)
	u.push(b, "test/one:latest", img)
	l := mustLayer(b, img, 0)
	dg, err := l.Digest()
	if err != nil {
		b.Fatal(err)
	}
	blobURL := d.url("/v2/test/one/blobs/" + dg.String())
	for b.Loop() {
		g, ctx := errgroup.WithContext(context.Background())
		for range 4 {
			g.Go(func() error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, blobURL, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				n, err := io.Copy(io.Discard, resp.Body)
				if err == nil && n < bigSize {
					err = fmt.Errorf("short blob: %d bytes", n)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(4 * bigSize)
	hwm, err := peakRSS(d.proc.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
}

// peakRSS reads a process's high-water resident set size, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
