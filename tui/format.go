package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// short is a digest as a table shows it: the first 8 hex digits, which
// the details view and the log complete.
func short(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) >= 8 {
		return h[:8]
	}
	return d
}

// fmtBytes is a size in binary units, one decimal below 10.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
	if f < 10 {
		return fmt.Sprintf("%.1f %s", f, suffix)
	}
	return fmt.Sprintf("%.0f %s", f, suffix)
}

// fmtDur is a duration as a column shows it: 3 significant figures.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmtSpan(d)
}

// fmtSpan is a long span: uptime, a token's time left.
func fmtSpan(d time.Duration) string {
	d = d.Truncate(time.Second)
	h, mi, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd%02dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, mi)
	case mi > 0:
		return fmt.Sprintf("%dm%02ds", mi, s)
	}
	return fmt.Sprintf("%ds", s)
}

// fit pads or cuts s to exactly w cells; a cut shows "…".
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if n := ansi.StringWidth(s); n <= w {
		return s + strings.Repeat(" ", w-n)
	}
	return ansi.Truncate(s, w, "…")
}

// fitLeft is fit cutting the start: an image name keeps its tag.
func fitLeft(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if n := ansi.StringWidth(s); n > w {
		return ansi.TruncateLeft(s, n-w+1, "…")
	}
	return fit(s, w)
}

// right right-aligns s in w cells.
func right(s string, w int) string {
	if n := ansi.StringWidth(s); n < w {
		return strings.Repeat(" ", w-n) + s
	}
	return fit(s, w)
}

// wrapIndent wraps s to width, the lines after the first indented.
func wrapIndent(s string, width, indent int) []string {
	if width <= indent+10 {
		return []string{s}
	}
	lines := strings.Split(ansi.Wrap(s, width, " "), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	if len(lines) == 1 {
		return lines
	}
	rest := ansi.Wrap(strings.Join(lines[1:], " "), width-indent, " ")
	out := []string{lines[0]}
	for _, l := range strings.Split(rest, "\n") {
		out = append(out, strings.Repeat(" ", indent)+strings.TrimRight(l, " "))
	}
	return out
}

// displayRepo drops the Docker Hub host a user never types.
func displayRepo(repo string) string {
	for _, p := range []string{"index.docker.io/", "registry-1.docker.io/", "docker.io/"} {
		if r, ok := strings.CutPrefix(repo, p); ok {
			return r
		}
	}
	return repo
}

// plural is "1 file", "2 files".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
