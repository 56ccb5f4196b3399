package daemon

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/peer"
)

// metrics are the Prometheus metrics of GET /metrics. They live in a
// registry of the daemon's own, not the package-global one, so that two
// daemons in one process (tests) count apart. All but the upstream
// latency are fed from the event bus, which the handlers already tell
// everything.
type metrics struct {
	reg       *prometheus.Registry
	pulls     prometheus.Counter
	manifests *prometheus.CounterVec
	rewrites  prometheus.Counter
	blobs     *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	tokens    prometheus.Counter
	reloads   *prometheus.CounterVec
	tunnelUp  prometheus.Gauge
	upstream  *prometheus.HistogramVec
	// The tunnel's costs: see accounting.go.
	served     *prometheus.CounterVec
	redirects  *prometheus.CounterVec
	redirected *prometheus.CounterVec
}

func newMetrics() *metrics {
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "towerreg", Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		pulls:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: "towerreg", Name: "pulls_total", Help: "Images pulled: manifests served by tag."}),
		manifests: f("manifests_total", "Manifests served; cache=hit when the store held the answer, miss when it was made.", "cache"),
		rewrites:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "towerreg", Name: "rewrites_total", Help: "Manifests rewritten with the layer appended."}),
		blobs:     f("blobs_total", "Blobs served, by source: store (injected layers, rewritten configs) or upstream.", "source"),
		bytes:     f("bytes_total", "Blob bytes served, by source.", "source"),
		errors:    f("errors_total", "Requests answered with an error, by kind: manifest or blob.", "kind"),
		tokens:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: "towerreg", Name: "tokens_issued_total", Help: "Container tokens issued."}),
		reloads:   f("layer_reloads_total", "Reloads of the layer directory, by result: new (a new generation), unchanged or error.", "result"),
		tunnelUp:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "towerreg", Name: "tunnel_up", Help: "1 while the tunnel is up, else 0."}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "towerreg", Name: "upstream_request_duration_seconds",
			Help:    "Time from an upstream request to its response headers, by method and status code (error: no response).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5 ms to 10 s
		}, []string{"method", "code"}),
	}
	m.served = f("served_bytes_total", "Blob bytes the daemon sent, by audience (the face: local, or public for the tunnel and --public-listen) "+
		"and mode: stream (from the store or the upstream) or redirect (the 307s' bodies, next to nothing). Cut transfers count what was sent.", "audience", "mode")
	m.redirects = f("redirects_total", "Blob GETs answered with a 307, by where it sent the client: upstream (its signed URL) or offload (the offload store).", "source")
	m.redirected = f("redirected_bytes_total", "Sizes of the redirected blobs, which the daemon did not send, by source; "+
		"a redirect adds its size only when the daemon served the manifest that named the blob.", "source")
	// Every series exists from the start, at 0: a rate over a series that
	// appears with its first count misses that count.
	for _, a := range []string{peer.FaceLocal, peer.FacePublic} {
		for _, mode := range []string{modeStream, modeRedirect} {
			m.served.WithLabelValues(a, mode)
		}
	}
	for _, src := range []string{redirectUpstream, redirectOffload} {
		m.redirects.WithLabelValues(src)
		m.redirected.WithLabelValues(src)
	}
	m.reg.MustRegister(m.served, m.redirects, m.redirected)
	m.reg.MustRegister(m.pulls, m.manifests, m.rewrites, m.blobs, m.bytes, m.errors, m.tokens, m.reloads, m.tunnelUp, m.upstream,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe counts one event. It runs in Publish: counters only.
func (m *metrics) observe(e event.Event) {
	switch e := e.(type) {
	case event.ManifestServed:
		if e.Status >= 400 || e.Err != "" {
			m.errors.WithLabelValues("manifest").Inc()
			return
		}
		cache := "miss"
		if e.Cached {
			cache = "hit"
		} else if e.Upstream != e.Digest {
			m.rewrites.Inc()
		}
		m.manifests.WithLabelValues(cache).Inc()
		if e.Method == http.MethodGet && e.Reference != e.Digest {
			m.pulls.Inc()
		}
	case event.BlobServed:
		m.account(e)
		if e.Status >= 400 || e.Err != "" {
			m.errors.WithLabelValues("blob").Inc()
			return
		}
		m.blobs.WithLabelValues(e.Source).Inc()
		m.bytes.WithLabelValues(e.Source).Add(float64(e.Bytes))
	case event.TokenIssued:
		m.tokens.Inc()
	case event.LayerReloaded:
		switch {
		case e.Err != "":
			m.reloads.WithLabelValues("error").Inc()
		case e.Changed:
			m.reloads.WithLabelValues("new").Inc()
		default:
			m.reloads.WithLabelValues("unchanged").Inc()
		}
	case event.TunnelStatus:
		if e.State == event.TunnelUp {
			m.tunnelUp.Set(1)
		} else {
			m.tunnelUp.Set(0)
		}
	}
}

// account counts what a blob answer cost: the bytes sent, failed answers
// included (a cut stream was still carried), and the redirects.
func (m *metrics) account(e event.BlobServed) {
	m.served.WithLabelValues(blobFace(e), blobMode(e)).Add(float64(e.Bytes))
	src, ok := redirectSource(e)
	if !ok {
		return
	}
	m.redirects.WithLabelValues(src).Inc()
	if e.Size > 0 {
		m.redirected.WithLabelValues(src).Add(float64(e.Size))
	}
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// transport measures each upstream request up to its response headers,
// failures included (promhttp's round-tripper middleware skips those).
func (m *metrics) transport(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(r)
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.upstream.WithLabelValues(r.Method, code).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
