package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/tui/internal/replay"
)

// update rewrites testdata/*.golden. It is shared by every test of the
// package: register no other flag of that name.
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGoldenUpdateOff fails a run made with -update, so that a run that
// rewrote the goldens can never pass as a check of them.
func TestGoldenUpdateOff(t *testing.T) {
	if *update {
		t.Fatal("-update rewrote testdata/*.golden: review the diff, then run again without -update")
	}
}

// fakeSource is a daemon that answers a fixed status and counts re-packs.
type fakeSource struct {
	ch      chan event.Event
	status  admin.Status
	repacks int
}

func (f *fakeSource) Events() <-chan event.Event { return f.ch }
func (f *fakeSource) Status(context.Context) (admin.Status, error) {
	return f.status, nil
}
func (f *fakeSource) Repack(context.Context) error { f.repacks++; return nil }

// emptyStatus is a daemon just started: generation 1, nothing served.
func emptyStatus() admin.Status {
	st := replay.Status()
	st.Started = replay.Now.Add(-3 * time.Second)
	st.Counts = admin.Counts{}
	st.Layer.Generation, st.Layer.TarDigest, st.Layer.GzipDigest = 1, replay.Digest("tar-1"), replay.Digest("gz-1")
	return st
}

// newTestModel is a dashboard at w×h on a fixed clock, without colour,
// showing status and, if asked, the replayed events.
func newTestModel(t testing.TB, w, h int, st admin.Status, events []event.Event) (*Model, *fakeSource) {
	src := &fakeSource{ch: make(chan event.Event), status: st}
	m := New(context.Background(), Options{Source: src, Now: func() time.Time { return replay.Now }, NoColor: true, Location: time.UTC})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(statusMsg{st: st})
	if events != nil {
		m.Update(batchMsg{events: events})
		m.Update(frameMsg{})
	}
	return m, src
}

func press(m *Model, keys ...string) tea.Cmd {
	var last tea.Cmd
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "tab":
			msg = tea.KeyPressMsg{Code: tea.KeyTab}
		case "down":
			msg = tea.KeyPressMsg{Code: tea.KeyDown}
		default:
			r := []rune(k)[0]
			msg = tea.KeyPressMsg{Code: r, Text: k}
		}
		_, last = m.Update(msg)
	}
	return last
}

func plain(m *Model) string { return ansi.Strip(m.View().Content) }

// checkFrame checks the frame fills the screen exactly: height lines, none
// wider than the screen, so nothing wraps or scrolls the terminal.
func checkFrame(t *testing.T, frame string, w, h int) {
	t.Helper()
	lines := strings.Split(frame, "\n")
	if len(lines) != h {
		t.Errorf("%d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, over %d: %q", i+1, n, w, l)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test ./tui -update to rewrite it, then review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		w, h := size[0], size[1]
		for _, tt := range []struct {
			name   string
			st     admin.Status
			events []event.Event
			keys   []string
		}{
			{"empty", emptyStatus(), nil, nil},
			{"replay", replay.Status(), replay.Events(), nil},
			{"detail", replay.Status(), replay.Events(), []string{"G", "enter"}},
			{"tokens", replay.Status(), replay.Events(), []string{"2"}},
			{"token-detail", replay.Status(), replay.Events(), []string{"2", "enter"}},
			{"layer", replay.Status(), replay.Events(), []string{"3"}},
			{"log", replay.Status(), replay.Events(), []string{"4"}},
			{"help", replay.Status(), replay.Events(), []string{"?"}},
			{"filter", replay.Status(), replay.Events(), []string{"/", "b", "u", "s", "y", "enter"}},
		} {
			name := fmt.Sprintf("%s_%dx%d", tt.name, w, h)
			t.Run(name, func(t *testing.T) {
				m, _ := newTestModel(t, w, h, tt.st, tt.events)
				press(m, tt.keys...)
				got := plain(m)
				checkFrame(t, got, w, h)
				golden(t, name, got)
			})
		}
	}
}

// TestTrafficLine: the header's fourth line says what the public face
// sent and what redirects saved, as a lower bound when some redirects'
// sizes were never seen; a short screen leaves it out for the body.
func TestTrafficLine(t *testing.T) {
	tests := []struct {
		name    string
		traffic admin.Traffic
		height  int
		want    string
	}{
		{"nothing yet", admin.Traffic{}, 24, "public blobs sent 0 B · no redirects"},
		{"streamed only", admin.Traffic{PublicBytes: 272 << 20}, 24, "public blobs sent 272 MiB · no redirects"},
		{"redirects of known size", admin.Traffic{PublicBytes: 2048, Redirects: admin.Redirects{Upstream: 3, Offload: 1}, SavedBytes: 256 << 20},
			24, "public blobs sent 2.0 KiB · redirects 3 upstream, 1 offload · saved 256 MiB"},
		{"some of unknown size", admin.Traffic{Redirects: admin.Redirects{Upstream: 2}, SavedBytes: 1 << 20, Unsized: 1},
			24, "public blobs sent 0 B · redirects 2 upstream, 0 offload · saved ≥ 1.0 MiB"},
		{"a short screen", admin.Traffic{PublicBytes: 1}, 11, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := emptyStatus()
			st.Counts.Traffic = tt.traffic
			m, _ := newTestModel(t, 80, tt.height, st, nil)
			lines := strings.Split(plain(m), "\n")
			got := lines[3]
			if tt.want == "" {
				if strings.HasPrefix(got, "public ") {
					t.Errorf("a %d-row screen shows the traffic line %q", tt.height, got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("line 4 %q, want %q", got, tt.want)
			}
		})
	}
}
