package tui

import (
	"fmt"
	"testing"

	"github.com/tower-reg/tower-reg/tui/internal/replay"
)

// BenchmarkReplay10k replays 10,000 events into the model as the program
// delivers them, in batches, rendering one frame per batch as the frame
// tick would, and reports the events per second the dashboard keeps up
// with. A batch of 100 is 1,500 events/s at 15 frames/s.
func BenchmarkReplay10k(b *testing.B) {
	events := replay.Many(10000)
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			var frames int
			for b.Loop() {
				m, _ := newTestModel(b, 120, 40, replay.Status(), nil)
				for i := 0; i < len(events); i += batch {
					m.Update(batchMsg{events: events[i:min(i+batch, len(events))]})
					m.Update(frameMsg{})
					frames++
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N*len(events))/sec, "events/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(frames), "µs/batch+frame")
		})
	}
}

// BenchmarkFrame is the time to render one frame of a full dashboard
// (500 pulls kept, tokens, generations, logs), per screen size and pane.
func BenchmarkFrame(b *testing.B) {
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		for _, pane := range []string{"1", "2", "3", "4"} {
			b.Run(fmt.Sprintf("%dx%d/pane=%s", size[0], size[1], pane), func(b *testing.B) {
				m, _ := newTestModel(b, size[0], size[1], replay.Status(), replay.Many(10000))
				press(m, pane)
				// ns/op is the time of one frame.
				for b.Loop() {
					m.render()
				}
			})
		}
	}
}
