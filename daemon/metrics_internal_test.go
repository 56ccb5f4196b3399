package daemon

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsTransport: upstream requests are timed whether they get an
// answer or fail, and a failure is counted as code "error".
func TestMetricsTransport(t *testing.T) {
	m := newMetrics()
	fail := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") })
	ok := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody}, nil
	})
	for _, rt := range []http.RoundTripper{m.transport(fail), m.transport(ok), m.transport(ok)} {
		req := httptest.NewRequest(http.MethodHead, "https://registry.example/v2/", nil)
		if resp, err := rt.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`towerreg_upstream_request_duration_seconds_count{code="error",method="HEAD"} 1`,
		`towerreg_upstream_request_duration_seconds_count{code="418",method="HEAD"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
