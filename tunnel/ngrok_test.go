package tunnel

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/internal/syncbuf"
)

// TestNgrokNoNetwork runs the real ngrok agent with an invalid token on a
// machine that cannot reach ngrok (this one, and CI, reach only package
// registries): within 10 s it reports down with the reason in plain
// words, it keeps retrying until its context ends, and neither its reports
// nor its log carry the token.
func TestNgrokNoNetwork(t *testing.T) {
	const token = "invalid-2tokenXYZ"
	var logBuf syncbuf.Buffer
	n, err := NewNgrok(NgrokOptions{Authtoken: token, Log: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	type reported struct{ State, URL, Err string }
	var mu sync.Mutex
	var got []reported
	down := make(chan reported, 1)
	report := func(state, url, reason string) {
		s := reported{state, url, reason}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		if s.State == Down {
			select {
			case down <- s:
			default:
			}
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ln, err := n.Listen(ctx, report)
		if ln != nil {
			ln.Close()
			err = nil
		}
		done <- err
	}()
	select {
	case s := <-down:
		t.Logf("down after %v: %s", time.Since(start).Round(time.Millisecond), s.Err)
		if !strings.HasPrefix(s.Err, "cannot reach ngrok") && !strings.Contains(s.Err, "auth token") {
			t.Errorf("the reason is not in plain words: %q", s.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no down report within 10 s; reports: %+v", got)
	}
	select {
	case err := <-done:
		t.Fatalf("Listen gave up on a failure a retry may mend: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0].State != Connecting {
		t.Errorf("first report %+v, want connecting", got)
	}
	for _, s := range got {
		if strings.Contains(s.Err, token) {
			t.Errorf("report %+v", s)
		}
	}
	if n.Provider() != "ngrok" {
		t.Errorf("Provider = %q", n.Provider())
	}
	if strings.Contains(logBuf.String(), token) {
		t.Errorf("the log holds the auth token:\n%s", logBuf.String())
	}
	t.Logf("reports: %+v", got)
}
