package tui

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/tui/internal/replay"
)

// TestKeys drives the keys from the replayed state and checks what they
// change.
func TestKeys(t *testing.T) {
	for _, tt := range []struct {
		name  string
		keys  []string
		check func(t *testing.T, m *Model, src *fakeSource, cmd tea.Cmd)
	}{
		{"tab and digits switch panes", []string{"tab", "tab", "4", "1", "3"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			if m.pane != paneLayer {
				t.Errorf("pane %d, want layer", m.pane)
			}
		}},
		{"j moves, k stops at the top", []string{"j", "j", "k", "k", "k"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			if m.cursor[panePulls] != 0 {
				t.Errorf("cursor %d, want 0", m.cursor[panePulls])
			}
		}},
		{"G goes to the oldest, enter opens it, esc goes back", []string{"G", "enter"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			if !m.detail || m.selectedPull().Reference != "latest" || m.selectedPull().Repo != "index.docker.io/library/busybox" {
				t.Fatalf("detail %v on %v", m.detail, m.selectedPull())
			}
			press(m, "esc")
			if m.detail {
				t.Error("esc left the details open")
			}
		}},
		{"a filter narrows the rows and esc clears it", []string{"/", "e", "r", "r", "o", "r", "enter"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			if m.query[panePulls] != "error" || m.rows() != 1 || !strings.Contains(plain(m), "nope:latest") {
				t.Fatalf("query %q, %d rows", m.query[panePulls], m.rows())
			}
			press(m, "esc")
			if m.query[panePulls] != "" || m.rows() != 5 {
				t.Errorf("after esc: query %q, %d rows", m.query[panePulls], m.rows())
			}
		}},
		{"filters are per pane", []string{"/", "x", "enter", "2"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			if m.rows() != 2 || m.query[panePulls] != "x" {
				t.Errorf("tokens rows %d, pulls query %q", m.rows(), m.query[panePulls])
			}
		}},
		{"c copies the docker pull line over OSC 52", []string{"G", "c"}, func(t *testing.T, m *Model, _ *fakeSource, cmd tea.Cmd) {
			want := "docker pull 127.0.0.1:9090/library/busybox:latest"
			if got := clipboard(t, cmd); got != want {
				t.Errorf("clipboard %q, want %q", got, want)
			}
			if !strings.Contains(plain(m), "copied: "+want[:20]) {
				t.Errorf("no note of the copy:\n%s", plain(m))
			}
		}},
		{"c on a token's pull copies its docker run", []string{"j", "j", "j", "c"}, func(t *testing.T, m *Model, _ *fakeSource, cmd tea.Cmd) {
			want := "docker run reg.ngrok.app/wt/" + replay.Token + "/quay.io/nextflow/bash:latest"
			if got := clipboard(t, cmd); got != want {
				t.Errorf("clipboard %q, want %q", got, want)
			}
		}},
		{"the details of a token's pull name the token's image", []string{"j", "j", "j", "enter"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			want := "docker run reg.ngrok.app/wt/" + replay.Token + "/quay.io/nextflow/bash:latest"
			if !strings.Contains(plain(m), want) {
				t.Errorf("the details lack %q:\n%s", want, plain(m))
			}
		}},
		{"the details of a pull through the tunnel count its redirects", []string{"j", "j", "j", "enter"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			want := "ok · blobs 3/3 · 1.2 KiB · 2 redirected"
			if !strings.Contains(plain(m), want) {
				t.Errorf("the details lack %q:\n%s", want, plain(m))
			}
		}},
		{"a pull from a loopback upstream names its port with _", []string{"j", "j", "c"}, func(t *testing.T, m *Model, _ *fakeSource, cmd tea.Cmd) {
			if got, want := clipboard(t, cmd), "docker pull 127.0.0.1:9090/127.0.0.1_5000/test/multi:v1"; got != want {
				t.Errorf("clipboard %q, want %q", got, want)
			}
		}},
		{"r asks the daemon to re-pack", []string{"r"}, func(t *testing.T, m *Model, src *fakeSource, cmd tea.Cmd) {
			msg := cmd()
			if _, ok := msg.(repackMsg); !ok || src.repacks != 1 {
				t.Fatalf("r gave %T and %d re-packs, want a repackMsg and 1", msg, src.repacks)
			}
			m.Update(msg)
			if !strings.Contains(plain(m), "re-packed") {
				t.Errorf("no note of the re-pack")
			}
		}},
		{"? shows the help, esc closes it", []string{"?"}, func(t *testing.T, m *Model, _ *fakeSource, _ tea.Cmd) {
			if !strings.Contains(plain(m), "Panes") {
				t.Fatal("no full help")
			}
			press(m, "esc")
			if strings.Contains(plain(m), "Panes") {
				t.Error("help still shown")
			}
		}},
		{"q quits", []string{"q"}, func(t *testing.T, m *Model, _ *fakeSource, cmd tea.Cmd) {
			if _, ok := cmd().(tea.QuitMsg); !ok {
				t.Error("q did not quit")
			}
		}},
		{"q in the filter is text", []string{"/", "q"}, func(t *testing.T, m *Model, _ *fakeSource, cmd tea.Cmd) {
			if m.query[panePulls] != "q" {
				t.Errorf("query %q, want q", m.query[panePulls])
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, src := newTestModel(t, 80, 24, replay.Status(), replay.Events())
			cmd := press(m, tt.keys...)
			tt.check(t, m, src, cmd)
		})
	}
}

// clipboard runs cmd and returns what it sets the clipboard to.
func clipboard(t *testing.T, cmd tea.Cmd) string {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	// SetClipboard's message type is unexported; its one string field is
	// the text.
	v := reflect.ValueOf(cmd())
	if v.Kind() != reflect.String {
		t.Fatalf("command gave %T, not a clipboard message", cmd())
	}
	return v.String()
}

// TestCoalesce checks that events do not render: a burst marks the frame
// stale and asks for one frame tick, which renders once.
func TestCoalesce(t *testing.T) {
	m, _ := newTestModel(t, 80, 24, replay.Status(), nil)
	before := plain(m)
	_, cmd := m.Update(batchMsg{events: replay.Events()[:5]})
	if cmd == nil || !m.framePending || !m.dirty {
		t.Fatalf("after a batch: pending %v dirty %v cmd %v", m.framePending, m.dirty, cmd != nil)
	}
	if plain(m) != before {
		t.Error("a batch rendered before the frame tick")
	}
	m.Update(batchMsg{events: replay.Events()[5:]})
	m.Update(frameMsg{})
	if got := plain(m); got == before || !strings.Contains(got, "busybox:latest") {
		t.Errorf("the frame tick did not render the events:\n%s", got)
	}
	if m.dirty || m.framePending {
		t.Error("still dirty after the frame")
	}
}

// TestWaitEvents checks that one command takes a whole burst of events
// and log lines, and reports a closed stream.
func TestWaitEvents(t *testing.T) {
	ch := make(chan event.Event, 100)
	sink := NewLogSink(slog.LevelWarn)
	m := New(t.Context(), Options{Source: &fakeSource{ch: ch}, Logs: sink})
	for _, e := range replay.Events() {
		ch <- e
	}
	log := slog.New(sink).With("component", "test")
	log.Info("not shown")
	log.Warn("disk almost full", "free", "1 GiB")
	b := m.waitEvents()().(batchMsg)
	if len(b.events) != len(replay.Events()) || len(b.logs) != 1 || b.closed {
		t.Fatalf("batch of %d events, %d logs, closed %v", len(b.events), len(b.logs), b.closed)
	}
	if l := b.logs[0]; l.Msg != "disk almost full" || l.Attrs != `component=test free="1 GiB"` {
		t.Errorf("log line %+v", l)
	}
	close(ch)
	if b := m.waitEvents()().(batchMsg); !b.closed {
		t.Error("a closed stream was not reported")
	}
	m.Update(batchMsg{closed: true})
	m.Update(frameMsg{})
	if !strings.Contains(plain(m), "event stream ended") {
		t.Error("the end of the stream is not shown")
	}
}

// TestPublicLogin: with a public handler, the header says how other
// machines log in, and the help says where the password is.
func TestPublicLogin(t *testing.T) {
	for _, tt := range []struct {
		name   string
		listen []string
		tunnel *event.TunnelStatus
		file   string
		want   string
		wantPw string
	}{
		{"--public-listen on all addresses", []string{"0.0.0.0:9443"}, nil, "/state/towerreg/public-password",
			"docker login THIS-HOST:9443 -u towerreg", "the password in /state/towerreg/public-password"},
		{"--public-listen on one address", []string{"192.0.2.7:9443"}, nil, "",
			"docker login 192.0.2.7:9443 -u towerreg", "the password set in the config"},
		{"the tunnel, up", nil, &event.TunnelStatus{Provider: "ngrok", State: event.TunnelUp, URL: "https://1a2b.ngrok.app"}, "/pw",
			"docker login 1a2b.ngrok.app -u towerreg", "the password in /pw"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := replay.Status()
			st.Tunnel = admin.TunnelStatus{Provider: "off", PublicListen: tt.listen, Login: "towerreg", PasswordFile: tt.file}
			var events []event.Event
			if tt.tunnel != nil {
				st.Tunnel.Provider = "ngrok"
				events = append(events, *tt.tunnel)
			}
			m, _ := newTestModel(t, 120, 40, st, events)
			if !strings.Contains(plain(m), tt.want) {
				t.Errorf("the header lacks %q:\n%s", tt.want, plain(m))
			}
			press(m, "?")
			if !strings.Contains(plain(m), tt.wantPw) {
				t.Errorf("the help lacks %q:\n%s", tt.wantPw, plain(m))
			}
		})
	}
}

// TestResize checks every pane fills any screen size exactly.
func TestResize(t *testing.T) {
	m, _ := newTestModel(t, 80, 24, replay.Status(), replay.Events())
	for _, size := range [][2]int{{40, 10}, {80, 24}, {200, 60}, {100, 30}, {20, 6}} {
		m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		for _, k := range []string{"1", "2", "3", "4", "?"} {
			press(m, k)
			checkFrame(t, plain(m), max(size[0], 20), size[1])
			press(m, "esc")
		}
	}
}

func TestTokenCountdown(t *testing.T) {
	now := replay.Now
	src := &fakeSource{ch: make(chan event.Event)}
	m := New(context.Background(), Options{Source: src, Now: func() time.Time { return now }, NoColor: true, Location: time.UTC})
	m.Update(batchMsg{events: replay.Events()})
	press(m, "2")
	if !strings.Contains(plain(m), "57m55s") {
		t.Fatalf("no countdown:\n%s", plain(m))
	}
	now = now.Add(10 * time.Minute)
	m.Update(tickMsg(now))
	if !strings.Contains(plain(m), "47m55s") {
		t.Errorf("the countdown did not move on the tick:\n%s", plain(m))
	}
}

func TestReason(t *testing.T) {
	for _, tt := range []struct{ err, want string }{
		{"127.0.0.1:5055: GET http://127.0.0.1:5055/v2/nope/manifests/1: NAME_UNKNOWN: Unknown name", "NAME_UNKNOWN"},
		{"MANIFEST_UNKNOWN: manifest unknown", "MANIFEST_UNKNOWN"},
		{"r.example/app: manifest sha256:ab: config sha256:cd: 0 diff_ids for 4 layers", "0 diff_ids for 4 layers"},
		{"connection refused", "connection refused"},
	} {
		if got := reason(tt.err); got != tt.want {
			t.Errorf("reason(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
