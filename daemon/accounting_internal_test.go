package daemon

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// exposition reads the metrics as GET /metrics writes them: series ->
// value, for the series whose name starts with prefix.
func exposition(t *testing.T, m *metrics, prefix string) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
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

// accountingEvents is one of each kind of blob answer the accounting
// tells apart.
var accountingEvents = []struct {
	name string
	e    event.BlobServed
}{
	{"public stream from upstream", event.BlobServed{Face: "public", Method: "GET", Source: "upstream", Status: 200, Bytes: 1000, Size: 1000}},
	{"public stream from the store", event.BlobServed{Face: "public", Method: "GET", Source: "store", Status: 200, Bytes: 200, Size: 200}},
	{"public redirect, size from the manifest", event.BlobServed{Face: "public", Method: "GET", Source: "redirect", Status: 307, Bytes: 0, Size: 5000}},
	{"public redirect, size unknown", event.BlobServed{Face: "public", Method: "GET", Source: "redirect", Status: 307, Bytes: 0, Size: -1}},
	{"public offload", event.BlobServed{Face: "public", Method: "GET", Source: "offload", Status: 307, Bytes: 7, Size: 300}},
	{"public stream cut short", event.BlobServed{Face: "public", Method: "GET", Source: "upstream", Status: 200, Bytes: 40, Size: 100, Err: "connection reset"}},
	{"local stream", event.BlobServed{Face: "local", Method: "GET", Source: "upstream", Status: 200, Bytes: 3000, Size: 3000}},
	{"no face: an old event, local", event.BlobServed{Method: "GET", Source: "store", Status: 200, Bytes: 10, Size: 10}},
	{"a refused redirect is no redirect", event.BlobServed{Face: "public", Method: "GET", Source: "redirect", Status: 403, Size: 9999, Err: "denied"}},
}

// TestAccountingMetrics: each answer adds its bytes to its face and mode,
// and each redirect counts by source with its size saved when known.
func TestAccountingMetrics(t *testing.T) {
	m := newMetrics()
	for _, tt := range accountingEvents {
		m.observe(tt.e)
	}
	want := map[string]float64{
		`towerreg_served_bytes_total{audience="public",mode="stream"}`:   1000 + 200 + 40,
		`towerreg_served_bytes_total{audience="public",mode="redirect"}`: 7,
		`towerreg_served_bytes_total{audience="local",mode="stream"}`:    3000 + 10,
		`towerreg_served_bytes_total{audience="local",mode="redirect"}`:  0,
		`towerreg_redirects_total{source="upstream"}`:                    2,
		`towerreg_redirects_total{source="offload"}`:                     1,
		`towerreg_redirected_bytes_total{source="upstream"}`:             5000,
		`towerreg_redirected_bytes_total{source="offload"}`:              300,
	}
	got := map[string]float64{}
	for _, prefix := range []string{"towerreg_served_bytes_total", "towerreg_redirects_total", "towerreg_redirected_bytes_total"} {
		for k, v := range exposition(t, m, prefix) {
			got[k] = v
		}
	}
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	// Bounded labels: these series and no other, whatever the events said.
	if len(got) != len(want) {
		t.Errorf("%d accounting series, want %d: %v", len(got), len(want), got)
	}
}

// TestAccountingStatus: the status's traffic counts agree with the
// metrics, and tell the redirects whose size was unknown.
func TestAccountingStatus(t *testing.T) {
	var c counters
	for _, tt := range accountingEvents {
		c.add(tt.e)
	}
	got := c.snapshot().Traffic
	want := admin.Traffic{
		PublicBytes: 1000 + 200 + 7 + 40,
		LocalBytes:  3000 + 10,
		Redirects:   admin.Redirects{Upstream: 2, Offload: 1},
		SavedBytes:  5000 + 300,
		Unsized:     1,
	}
	if got != want {
		t.Errorf("traffic %+v, want %+v", got, want)
	}
}
