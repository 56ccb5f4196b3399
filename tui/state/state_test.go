package state_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/tui/internal/replay"
	"github.com/tower-reg/tower-reg/tui/state"
)

func replayed() *state.State {
	s := state.New()
	for _, e := range replay.Events() {
		s.Apply(e)
	}
	return s
}

// pull finds the pull of image (repo:ref) or fails.
func pull(t *testing.T, s *state.State, image string) *state.Pull {
	t.Helper()
	for _, p := range s.Pulls {
		if p.Image() == image {
			return p
		}
	}
	var have []string
	for _, p := range s.Pulls {
		have = append(have, p.Image())
	}
	t.Fatalf("no pull of %s; have %v", image, have)
	return nil
}

func TestApplyReplay(t *testing.T) {
	d := replay.Digest
	for _, tt := range []struct {
		name  string
		check func(t *testing.T, s *state.State)
	}{
		{"one row per pull", func(t *testing.T, s *state.State) {
			var got []string
			for _, p := range s.Pulls {
				got = append(got, p.Image()+" "+p.State())
			}
			want := []string{
				"index.docker.io/library/busybox:latest ok",
				"quay.io/nextflow/bash:latest ok",
				"127.0.0.1:5000/test/multi:v1 pulling",
				"index.docker.io/library/nope:latest error",
				"index.docker.io/library/busybox:1.36 cached",
			}
			if !slices.Equal(got, want) {
				t.Errorf("pulls\n got %q\nwant %q", got, want)
			}
		}},
		{"a cached upstream blob from the store is no config", func(t *testing.T, s *state.State) {
			p := pull(t, s, "index.docker.io/library/busybox:1.36")
			if !slices.Equal(p.Configs, []string{d("bb136-config-rw")}) || len(p.Injected) != 0 {
				t.Errorf("configs %v injected %v; want the manifest's config only", p.Configs, p.Injected)
			}
		}},
		{"HEAD, GET and blobs of one image across connections", func(t *testing.T, s *state.State) {
			p := pull(t, s, "index.docker.io/library/busybox:latest")
			if p.Client != "127.0.0.1" || len(p.Requests) != 6 || p.BlobsStarted != 3 || p.BlobsDone != 3 {
				t.Errorf("client %q, %d requests, blobs %d/%d; want 127.0.0.1, 6, 3/3", p.Client, len(p.Requests), p.BlobsDone, p.BlobsStarted)
			}
			if p.Upstream != d("bb-index") || p.Digest != d("bb-index-rw") || p.Cached {
				t.Errorf("upstream %s digest %s cached %v", p.Upstream, p.Digest, p.Cached)
			}
			if !slices.Equal(p.Platforms, []string{"linux/amd64", "linux/arm64"}) {
				t.Errorf("platforms %v", p.Platforms)
			}
			if !slices.Equal(p.Injected, []string{d("gz-1")}) || !slices.Equal(p.Configs, []string{d("bb-config-rw")}) {
				t.Errorf("injected %v configs %v", p.Injected, p.Configs)
			}
			if want := int64(2<<20 + 1500 + 4100); p.BytesDone != want || p.Progress() != 1 {
				t.Errorf("bytes %d progress %v, want %d and 1", p.BytesDone, p.Progress(), want)
			}
			if p.Duration() != 2210*time.Millisecond { // from the start of the HEAD
				t.Errorf("duration %v, want 2.21s", p.Duration())
			}
		}},
		{"a pull in flight has partial progress", func(t *testing.T, s *state.State) {
			p := pull(t, s, "127.0.0.1:5000/test/multi:v1")
			if p.InFlight() != 2 || p.BlobsDone != 1 {
				t.Errorf("in flight %d done %d, want 2 and 1", p.InFlight(), p.BlobsDone)
			}
			if got, want := p.Progress(), 900.0/float64(900+8<<20+5000); got != want {
				t.Errorf("progress %v, want %v", got, want)
			}
			// The generation 2 overlay is known as injected once served.
			s.Apply(event.BlobServed{Meta: event.Meta{Time: replay.T0.Add(51 * time.Second)}, Client: "127.0.0.1:1", Method: "GET",
				Repo: p.Repo, Digest: d("gz-2-arm64"), Source: "store", Bytes: 5000, Status: 200})
			if !slices.Equal(p.Injected, []string{d("gz-2-arm64")}) || p.InFlight() != 1 {
				t.Errorf("injected %v in flight %d", p.Injected, p.InFlight())
			}
		}},
		{"errors keep their reason and reach the log", func(t *testing.T, s *state.State) {
			p := pull(t, s, "index.docker.io/library/nope:latest")
			if p.ErrStatus != 404 || !strings.HasPrefix(p.Err, "MANIFEST_UNKNOWN") {
				t.Errorf("status %d err %q", p.ErrStatus, p.Err)
			}
			if !slices.ContainsFunc(s.Logs, func(l state.LogLine) bool { return strings.Contains(l.Attrs, "MANIFEST_UNKNOWN") }) {
				t.Errorf("no log line for the failed pull: %v", s.Logs)
			}
		}},
		{"tokens: pulls counted, expiry", func(t *testing.T, s *state.State) {
			if len(s.Tokens) != 2 {
				t.Fatalf("%d tokens, want 2", len(s.Tokens))
			}
			if tk := s.Tokens[0]; tk.Token != replay.Token || tk.Pulls != 1 || tk.Expired {
				t.Errorf("first token %+v, want 1 pull, not expired", tk)
			}
			if tk := s.Tokens[1]; !tk.Expired || tk.Pulls != 0 {
				t.Errorf("second token %+v, want expired, no pull", tk)
			}
			if p := pull(t, s, "quay.io/nextflow/bash:latest"); p.Token != replay.Token || p.Client != "192.0.2.10" {
				t.Errorf("token pull: token %q client %q", p.Token, p.Client)
			}
		}},
		{"the tunnel pull's redirects: base layer to upstream, injected layer to offload", func(t *testing.T, s *state.State) {
			p := pull(t, s, "quay.io/nextflow/bash:latest")
			if want := []string{d("bash-base"), d("gz-1")}; !slices.Equal(p.Redirected, want) {
				t.Errorf("redirected %v, want %v", p.Redirected, want)
			}
			if !slices.Equal(p.Injected, []string{d("gz-1")}) {
				t.Errorf("injected %v, want the offloaded layer", p.Injected)
			}
			if p.State() != state.StateOK || p.BlobsDone != 3 || p.BytesDone != 1200 {
				t.Errorf("state %s, %d blobs done, %d bytes: want ok, 3, the config's 1200", p.State(), p.BlobsDone, p.BytesDone)
			}
			if other := pull(t, s, "index.docker.io/library/busybox:latest"); len(other.Redirected) != 0 {
				t.Errorf("a streamed pull has redirects %v", other.Redirected)
			}
		}},
		{"generations and the last reload", func(t *testing.T, s *state.State) {
			if s.Current.Number != 2 || s.Current.GzipDigest != d("gz-2") || len(s.Generations) != 2 {
				t.Errorf("current %+v, %d generations", s.Current, len(s.Generations))
			}
			if r := s.LastReload; r == nil || r.Trigger != "etc/fusion.conf" || r.Duration != 165*time.Millisecond {
				t.Errorf("last reload %+v", r)
			}
			if got := s.Current.PlatformNames(); !slices.Equal(got, []string{"linux_amd64", "linux_arm64"}) {
				t.Errorf("platforms %v", got)
			}
		}},
		{"the tunnel's last state, its reasons logged", func(t *testing.T, s *state.State) {
			if s.Tunnel == nil || s.Tunnel.State != event.TunnelDown || !strings.Contains(s.Tunnel.Err, "revoked") {
				t.Errorf("tunnel %+v", s.Tunnel)
			}
			n := 0
			for _, l := range s.Logs {
				if strings.HasPrefix(l.Msg, "tunnel ") {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d tunnel log lines, want 2 (reconnecting, down)", n)
			}
		}},
		{"status fills in what events did not say", func(t *testing.T, s *state.State) {
			s.SetStatus(replay.Status())
			if s.Current.TarDigest != d("tar-2") || s.Current.Files != 3 || s.Current.Platforms["linux_amd64"] != d("gz-2-amd64") {
				t.Errorf("current after status %+v", s.Current)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, replayed()) })
	}
}

// TestStatusTunnel: a dashboard that attached after the tunnel came up has
// no TunnelStatus event; the status document tells the state, and a later
// event still wins.
func TestStatusTunnel(t *testing.T) {
	st := replay.Status()
	st.Tunnel = admin.TunnelStatus{Provider: "ngrok", State: event.TunnelUp, URL: "https://1a2b.ngrok.app"}
	s := state.New()
	s.SetStatus(st)
	if s.Tunnel == nil || s.Tunnel.State != event.TunnelUp || s.Tunnel.URL != st.Tunnel.URL {
		t.Fatalf("tunnel %+v after the status", s.Tunnel)
	}
	s.Apply(event.TunnelStatus{Provider: "ngrok", State: event.TunnelReconnecting, Err: "lost"})
	s.SetStatus(st)
	if s.Tunnel.State != event.TunnelReconnecting {
		t.Errorf("tunnel %+v: the status overrode a newer event", s.Tunnel)
	}
}

func TestApplyPullBoundaries(t *testing.T) {
	t0 := replay.T0
	ms := func(at time.Duration, ref string) event.ManifestServed {
		return event.ManifestServed{Meta: event.Meta{Time: t0.Add(at)}, Client: "127.0.0.1:1", Method: "GET",
			Repo: "r.example/app", Reference: ref, Digest: "sha256:x", Status: 200}
	}
	blob := func(at time.Duration) []event.Event {
		return []event.Event{
			event.BlobStarted{Meta: event.Meta{Time: t0.Add(at)}, Client: "127.0.0.1:2", Repo: "r.example/app", Digest: "sha256:b", Size: 10},
			event.BlobServed{Meta: event.Meta{Time: t0.Add(at)}, Client: "127.0.0.1:2", Method: "GET", Repo: "r.example/app", Digest: "sha256:b", Bytes: 10, Status: 200},
		}
	}
	for _, tt := range []struct {
		name   string
		events []event.Event
		pulls  int
	}{
		{"the same tag again before any blob", []event.Event{ms(0, "v1"), ms(time.Second, "v1")}, 1},
		{"the same tag again after blobs", append(append([]event.Event{ms(0, "v1")}, blob(time.Second)...), ms(2*time.Second, "v1")), 2},
		{"another tag", []event.Event{ms(0, "v1"), ms(time.Second, "v2")}, 2},
		{"a digest follows the tag", []event.Event{ms(0, "v1"), ms(time.Second, "sha256:p")}, 1},
		{"after a long silence", []event.Event{ms(0, "v1"), ms(time.Minute, "sha256:p")}, 2},
		{"blobs with no manifest", blob(0), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := state.New()
			for _, e := range tt.events {
				s.Apply(e)
			}
			if len(s.Pulls) != tt.pulls {
				t.Errorf("%d pulls, want %d", len(s.Pulls), tt.pulls)
			}
		})
	}
}

func TestApplyBounds(t *testing.T) {
	s := state.New()
	for _, e := range replay.Many(20000) {
		s.Apply(e)
	}
	if len(s.Pulls) != state.MaxPulls || len(s.Logs) != state.MaxLogs || len(s.Generations) != state.MaxGenerations {
		t.Errorf("%d pulls, %d logs, %d generations; want the bounds %d, %d, %d",
			len(s.Pulls), len(s.Logs), len(s.Generations), state.MaxPulls, state.MaxLogs, state.MaxGenerations)
	}
	if s.Events != 20000 {
		t.Errorf("%d events applied, want 20000", s.Events)
	}
}

func TestFilter(t *testing.T) {
	s := replayed()
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"", []string{"busybox:1.36", "nope:latest", "multi:v1", "bash:latest", "busybox:latest"}},
		{"BUSYBOX", []string{"busybox:1.36", "busybox:latest"}},
		{"error", []string{"nope:latest"}},
		{"pulling", []string{"multi:v1"}},
		{"arm64", []string{"multi:v1", "busybox:latest"}},
		{"192.0.2", []string{"bash:latest"}},
		{replay.Token, []string{"bash:latest"}},
		{replay.Digest("bb136-rw")[7:19], []string{"busybox:1.36"}},
		{"no such thing", nil},
	} {
		t.Run(tt.q, func(t *testing.T) {
			var got []string
			for _, p := range s.FilterPulls(tt.q) {
				got = append(got, p.Image()[strings.LastIndex(p.Image(), "/")+1:])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("FilterPulls(%q) = %q, want %q", tt.q, got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		q      string
		tokens int
		logs   int
	}{
		{"", 2, 3},
		{"alpine", 1, 0},
		{"revoked", 0, 1},
		{"warn", 0, 3},
	} {
		if got := len(s.FilterTokens(tt.q)); got != tt.tokens {
			t.Errorf("FilterTokens(%q): %d, want %d", tt.q, got, tt.tokens)
		}
		if got := len(s.FilterLogs(tt.q)); got != tt.logs {
			t.Errorf("FilterLogs(%q): %d, want %d", tt.q, got, tt.logs)
		}
	}
}

// TestRedirectedBlobs: a pull counts each blob a redirect answered once,
// a retry included; a stream, a HEAD or a failed redirect is none.
func TestRedirectedBlobs(t *testing.T) {
	t0 := replay.T0
	blob := func(sec float64, digest, source, method string, status int, err string) event.Event {
		return event.BlobServed{Meta: event.Meta{Time: t0.Add(time.Duration(sec * float64(time.Second)))}, Client: "192.0.2.1:1",
			Method: method, Repo: "r", Digest: digest, Source: source, Face: "public", Status: status, Err: err}
	}
	tests := []struct {
		name   string
		events []event.Event
		want   int
	}{
		{"one redirect", []event.Event{blob(0, "sha256:a", "redirect", "GET", 307, "")}, 1},
		{"a retry of it", []event.Event{blob(0, "sha256:a", "redirect", "GET", 307, ""), blob(1, "sha256:a", "redirect", "GET", 307, "")}, 1},
		{"upstream and offload", []event.Event{blob(0, "sha256:a", "redirect", "GET", 307, ""), blob(1, "sha256:b", "offload", "GET", 307, "")}, 2},
		{"a stream", []event.Event{blob(0, "sha256:a", "upstream", "GET", 200, "")}, 0},
		{"a HEAD", []event.Event{blob(0, "sha256:a", "redirect", "HEAD", 200, "")}, 0},
		{"a refused redirect", []event.Event{blob(0, "sha256:a", "redirect", "GET", 403, "denied")}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state.New()
			for _, e := range tt.events {
				s.Apply(e)
			}
			if len(s.Pulls) != 1 {
				t.Fatalf("%d pulls, want 1", len(s.Pulls))
			}
			if got := len(s.Pulls[0].Redirected); got != tt.want {
				t.Errorf("%d redirected, want %d", got, tt.want)
			}
		})
	}
}
