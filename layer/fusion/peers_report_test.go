package fusion

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// peerRatios is BenchmarkPeers' table, in Markdown: for each workload and
// client, the ratio of the client's median to the direct loop's, the
// range of the rounds' own ratios (each round against the direct loop of
// the same round) in brackets, the best median in bold; the start-up rows
// in milliseconds. It reports each median as a metric too (metric is
// testing.B's ReportMetric).
func peerRatios(times map[string]map[string][]time.Duration, metric func(n float64, unit string)) string {
	var sb strings.Builder
	names := peerNames()
	sb.WriteString("| workload (median, × a direct S3 request loop; range over the rounds) |")
	for _, n := range names {
		sb.WriteString(" " + n + " |")
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(names)) + "\n")
	for _, w := range peerWorkloads {
		row := times[w.name]
		best := slices.MinFunc(names, func(x, y string) int { return cmp.Compare(median(row[x]), median(row[y])) })
		sb.WriteString("| " + w.name + " |")
		for _, n := range names {
			var cell string
			if w.startup {
				lo, hi := slices.Min(row[n]), slices.Max(row[n])
				cell = fmt.Sprintf("%s ms", ms(median(row[n])))
				if n == best {
					cell = "**" + cell + "**"
				}
				cell += fmt.Sprintf(" (%s–%s)", ms(lo), ms(hi))
				metric(float64(median(row[n]))/float64(time.Millisecond), n+"-"+w.id+"-ms")
			} else {
				ratio := float64(median(row[n])) / float64(median(row["direct"]))
				rounds := perRound(row[n], row["direct"])
				cell = fmt.Sprintf("%.2f", ratio)
				if n == best {
					cell = "**" + cell + "**"
				}
				cell += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(rounds), slices.Max(rounds))
				metric(ratio, n+"-"+w.id+"-x")
			}
			sb.WriteString(" " + cell + " |")
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// peerMedians is the table of the medians themselves.
func peerMedians(times map[string]map[string][]time.Duration) string {
	var sb strings.Builder
	names := append([]string{"direct"}, peerNames()...)
	sb.WriteString("| workload (median) |")
	for _, n := range names {
		sb.WriteString(" " + n + " |")
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(names)) + "\n")
	for _, w := range peerWorkloads {
		sb.WriteString("| " + w.name + " |")
		for _, n := range names {
			if ds := times[w.name][n]; len(ds) > 0 {
				sb.WriteString(" " + ms(median(ds)) + " ms |")
			} else {
				sb.WriteString(" |")
			}
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// perRound is each round's ratio of client to direct time.
func perRound(client, direct []time.Duration) []float64 {
	out := make([]float64, 0, len(client))
	for i := range min(len(client), len(direct)) {
		out = append(out, float64(client[i])/float64(direct[i]))
	}
	return out
}

// ms is d in milliseconds, with no more digits than the noise allows.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
}

// loadAverage is the 1, 5 and 15 minute load averages, for the report:
// the machine is shared.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return strings.TrimSpace(string(b))
	}
	return strings.Join(f[:3], " ")
}

func TestPeerRatios(t *testing.T) {
	durs := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	times := map[string]map[string][]time.Duration{}
	for _, w := range peerWorkloads {
		times[w.name] = map[string][]time.Duration{
			"direct": durs(100, 200, 100), "tower-reg": durs(150, 200, 120),
			"s3fs": durs(300, 300, 300), "rclone-off": durs(110, 500, 90), "rclone-full": durs(1000, 1000, 1000),
		}
		if w.startup {
			delete(times[w.name], "direct")
		}
	}
	metrics := map[string]float64{}
	table := peerRatios(times, func(n float64, unit string) { metrics[unit] = n })
	lines := strings.Split(table, "\n")
	tests := []struct {
		line int
		want string
	}{
		// Medians: direct 100, tower-reg 150, s3fs 300, rclone-off 110,
		// rclone-full 1000; the rounds' ratios give the ranges.
		{2, "| sequential read, 256 MiB | 1.50 (1.00–1.50) | 3.00 (1.50–3.00) | **1.10** (0.90–2.50) | 10.00 (5.00–10.00) |"},
		{2 + len(peerWorkloads) - 1, "| start-up to the first `ls`, caches dropped | 150 ms (120–200) | 300 ms (300–300) | **110 ms** (90–500) | 1000 ms (1000–1000) |"},
	}
	for _, tt := range tests {
		if lines[tt.line] != tt.want {
			t.Errorf("line %d:\n got %s\nwant %s", tt.line, lines[tt.line], tt.want)
		}
	}
	if got := metrics["s3fs-read-x"]; got != 3 {
		t.Errorf("metric s3fs-read-x = %v, want 3", got)
	}
	if got := metrics["tower-reg-startup-ms"]; got != 150 {
		t.Errorf("metric tower-reg-startup-ms = %v, want 150", got)
	}
}
