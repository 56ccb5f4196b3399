package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tower-reg/tower-reg/daemon/config"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9090", true},
		{"127.0.0.2:9090", true},
		{"localhost:9090", true},
		{"[::1]:9090", true},
		{":9090", false},
		{"0.0.0.0:9090", false},
		{"[::]:9090", false},
		{"192.168.1.10:9090", false},
		{"example.com:9090", false},
		{"127.0.0.1", false}, // no port
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := checkLoopback(tt.addr)
			if (err == nil) != tt.ok {
				t.Fatalf("checkLoopback(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
			}
			if !tt.ok && !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("the error does not name the address: %v", err)
			}
		})
	}
}

// TestShutdown: a stop lets an in-flight request finish within the bound,
// cuts it after the bound, and returns without error either way.
func TestShutdown(t *testing.T) {
	tests := []struct {
		name     string
		work     time.Duration // how long the in-flight request takes
		limit    time.Duration
		finished bool
	}{
		{"in-flight request finishes", 300 * time.Millisecond, 5 * time.Second, true},
		{"in-flight request is cut at the bound", time.Hour, 300 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(t.Context(), Options{
				Config:          config.Default(),
				CacheDir:        t.TempDir(),
				Layer:           fstest.MapFS{"f": {Data: []byte("x")}},
				ShutdownTimeout: tt.limit,
			})
			if err != nil {
				t.Fatal(err)
			}
			started := make(chan struct{})
			d.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-time.After(tt.work):
					io.WriteString(w, "done")
				case <-r.Context().Done():
				}
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(t.Context())
			served := make(chan error, 1)
			go func() { served <- d.Serve(ctx, ln) }()

			got := make(chan string, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- string(b)
			}()
			<-started
			stopped := time.Now()
			stop()
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("Serve after a stop: %v", err)
				}
			case <-time.After(tt.limit + 5*time.Second):
				t.Fatal("Serve did not return after the shutdown bound")
			}
			if took := time.Since(stopped); took > tt.limit+2*time.Second {
				t.Errorf("shutdown took %v, bound %v", took, tt.limit)
			}
			answer := <-got
			if (answer == "done") != tt.finished {
				t.Errorf("client got %q; finished=%v", answer, tt.finished)
			}
			if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil || errors.Is(err, context.Canceled) {
				t.Errorf("the daemon still accepts connections after shutdown: %v", err)
			}
		})
	}
}
