package tui

import (
	"log/slog"
	"strings"

	"github.com/tower-reg/tower-reg/tui/state"
)

// logLines shows warnings and errors, newest first, each wrapped whole.
func (m *Model) logLines(w, h int) []string {
	ls := m.st.FilterLogs(m.query[paneLog])
	if len(ls) == 0 {
		msg := "No warnings or errors."
		if m.query[paneLog] != "" {
			msg = "No log line matches the filter."
		}
		return []string{"", m.styles.dim.Render(msg)}
	}
	cur := min(m.cursor[paneLog], len(ls)-1)
	var lines []string
	for i := cur; i < len(ls) && len(lines) < h; i++ {
		for j, l := range m.logLine(ls[i], w) {
			if i == cur && j == 0 {
				l = m.styles.selected.Render(fit(l, w))
			}
			lines = append(lines, l)
		}
	}
	return lines
}

func (m *Model) logLine(l state.LogLine, w int) []string {
	lvl := l.Level.String()
	text := l.Time.In(m.loc).Format("15:04:05") + " " + lvl + " " + l.Msg
	if l.Attrs != "" {
		text += "  " + l.Attrs
	}
	lines := wrapIndent(text, w, 9)
	if l.Level >= slog.LevelError {
		lines[0] = strings.Replace(lines[0], lvl, m.styles.bad.Render(lvl), 1)
	} else if l.Level >= slog.LevelWarn {
		lines[0] = strings.Replace(lines[0], lvl, m.styles.warn.Render(lvl), 1)
	}
	return lines
}
