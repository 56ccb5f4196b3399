package faults

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var body = bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB

// TestKinds checks each fault on its own, against a handler that always
// answers the same blob: what the client sees is what the fault promises.
func TestKinds(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	tests := []struct {
		rule  Rule
		check func(t *testing.T, resp *http.Response, err error, took time.Duration)
	}{
		{Rule{Kind: Latency, Delay: 100 * time.Millisecond}, func(t *testing.T, resp *http.Response, err error, took time.Duration) {
			got := readAll(t, resp, err)
			if !bytes.Equal(got, body) || took < 100*time.Millisecond {
				t.Fatalf("latency: %d bytes after %v, want the whole body after 100ms", len(got), took)
			}
		}},
		{Rule{Kind: Reset}, func(t *testing.T, resp *http.Response, err error, _ time.Duration) {
			if err == nil {
				resp.Body.Close()
				t.Fatalf("reset: got status %d, want a connection error", resp.StatusCode)
			}
		}},
		{Rule{Kind: Status, Code: 502}, func(t *testing.T, resp *http.Response, err error, _ time.Duration) {
			got := readAll(t, resp, err)
			if resp.StatusCode != 502 || !strings.Contains(string(got), "UNAVAILABLE") {
				t.Fatalf("status: %d %s", resp.StatusCode, got)
			}
		}},
		{Rule{Kind: TooMany, RetryAfter: 2 * time.Second}, func(t *testing.T, resp *http.Response, err error, _ time.Duration) {
			readAll(t, resp, err)
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("too many: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}},
		{Rule{Kind: Truncate, Target: Blobs}, func(t *testing.T, resp *http.Response, err error, _ time.Duration) {
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) >= len(body) {
				t.Fatalf("truncate: %d bytes, error %v; want a short read and an unexpected EOF", len(got), err)
			}
		}},
		{Rule{Kind: Corrupt, Target: Blobs}, func(t *testing.T, resp *http.Response, err error, _ time.Duration) {
			got := readAll(t, resp, err)
			if len(got) != len(body) || bytes.Equal(got, body) {
				t.Fatalf("corrupt: %d bytes, equal %v; want the same length, other bytes", len(got), bytes.Equal(got, body))
			}
		}},
		{Rule{Kind: Oversize, Target: Manifests, Size: 5 << 20}, func(t *testing.T, resp *http.Response, err error, _ time.Duration) {
			got := readAll(t, resp, err)
			if len(got) != 5<<20 || !bytes.HasPrefix(got, []byte(`{"schemaVersion":2`)) {
				t.Fatalf("oversize: %d bytes", len(got))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.rule.Kind.String(), func(t *testing.T) {
			inj := New(upstream)
			srv := httptest.NewServer(inj)
			defer srv.Close()
			defer inj.Close()
			inj.Set(tt.rule)
			path := "/v2/a/blobs/sha256:x"
			if tt.rule.Target == Manifests {
				path = "/v2/a/manifests/latest"
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			start := time.Now()
			resp, err := client.Get(srv.URL + path)
			tt.check(t, resp, err, time.Since(start))
			if inj.Hits() != 1 {
				t.Fatalf("%d hits, want 1", inj.Hits())
			}
		})
	}
}

// TestHangAndTimes: a hang ends with the client, and a rule with Times
// stops after that many requests.
func TestHangAndTimes(t *testing.T) {
	inj := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv := httptest.NewServer(inj)
	defer srv.Close()
	defer inj.Close()

	inj.Set(Rule{Kind: Hang})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("hang: got status %d", resp.StatusCode)
	}

	inj.Set(Rule{Kind: Status, Code: 500, Times: 2})
	var codes []int
	for range 3 {
		resp, err := http.Get(srv.URL + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 500 || codes[1] != 500 || codes[2] != 200 {
		t.Fatalf("codes %v, want [500 500 200]", codes)
	}
	if n := inj.Count("other"); n != 4 {
		t.Fatalf("counted %d requests, want 4", n)
	}
	http.DefaultClient.CloseIdleConnections()
}

func readAll(t *testing.T, resp *http.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
