package daemon_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// scrape reads GET /metrics into series -> value; a series is written as
// the exposition format writes it: name{label="value",...}.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetrics pulls an image twice and a missing tag once, and checks that
// each counter moved by what happened.
func TestMetrics(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{Entrypoint: []string{"/app"}})
	e.push(t, "test/metrics", "v1", base)
	proxyURL := "http://" + host(e.proxy)

	before := scrape(t, proxyURL)
	if before["towerreg_pulls_total"] != 0 || before["towerreg_tunnel_up"] != 0 {
		t.Fatalf("a fresh daemon counted pulls or a tunnel: %v", before)
	}
	for range 2 {
		img, err := remote.Image(mustRef(t, e.through("test/metrics")+":v1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil { // fetches every blob
			t.Fatal(err)
		}
	}
	if _, err := remote.Image(mustRef(t, e.through("test/metrics")+":missing")); err == nil {
		t.Fatal("a missing tag pulled")
	}
	m := scrape(t, proxyURL)
	// validate.Image reads some blobs more than once, so blob counts are
	// bounded below: the config and the layer from the store in each of
	// the two pulls, and the two base layers from upstream in the first
	// one. In the second they come from upstream or, once the first
	// pull's copies are committed to the cache, from the store.
	tests := []struct {
		series string
		check  func(v float64) bool
		want   string
	}{
		{"towerreg_pulls_total", func(v float64) bool { return v == 2 }, "2"},
		{`towerreg_manifests_total{cache="miss"}`, func(v float64) bool { return v == 1 }, "1: the first pull rewrites"},
		{`towerreg_manifests_total{cache="hit"}`, func(v float64) bool { return v == 1 }, "1: the second pull finds the rewrite stored"},
		{"towerreg_rewrites_total", func(v float64) bool { return v == 1 }, "1"},
		{`towerreg_blobs_total{source="upstream"}`, func(v float64) bool { return v >= 2 }, ">= 2"},
		{`towerreg_blobs_total{source="store"}`, func(v float64) bool { return v >= 4 }, ">= 4"},
		{`towerreg_bytes_total{source="upstream"}`, func(v float64) bool { return v >= 2*256 }, ">= 512"},
		{`towerreg_bytes_total{source="store"}`, func(v float64) bool { return v > 0 }, "> 0"},
		{`towerreg_errors_total{kind="manifest"}`, func(v float64) bool { return v == 1 }, "1: the missing tag"},
		{`towerreg_upstream_request_duration_seconds_count{code="200",method="GET"}`, func(v float64) bool { return v >= 3 }, ">= 3"},
		{`towerreg_upstream_request_duration_seconds_count{code="404",method="HEAD"}`, func(v float64) bool { return v >= 1 }, ">= 1: the missing tag"},
		{"go_goroutines", func(v float64) bool { return v > 0 }, "> 0"},
	}
	for _, tt := range tests {
		if v, ok := m[tt.series]; !ok || !tt.check(v) {
			t.Errorf("%s = %v (present %v), want %s", tt.series, v, ok, tt.want)
		}
	}
	if t.Failed() {
		for k, v := range m {
			if strings.HasPrefix(k, "towerreg_") && !strings.Contains(k, "_bucket") {
				t.Logf("%s %v", k, v)
			}
		}
	}
}
