package tui

import (
	"fmt"
	"strings"
)

func (m *Model) tokenLines(w, h int) []string {
	s := m.styles
	const tok, exp, pulls, st = 10, 9, 5, 7
	flex := max(20, w-tok-exp-pulls-st-5)
	img, target := flex*2/5, flex-flex*2/5
	row := func(a, b, c, d, e, f string) string {
		return strings.Join([]string{fit(a, tok), fitLeft(b, img), fitLeft(c, target), right(d, exp), right(e, pulls), f}, " ")
	}
	lines := []string{s.dim.Render(row("TOKEN", "IMAGE", "TARGET IMAGE", "EXPIRES", "PULLS", "STATE"))}
	ts := m.st.FilterTokens(m.query[paneTokens])
	if len(ts) == 0 {
		msg := "No container tokens. POST /container-token hands them out."
		if m.query[paneTokens] != "" {
			msg = "No token matches the filter."
		}
		return append(lines, "", s.dim.Render(msg))
	}
	cur := min(m.cursor[paneTokens], len(ts)-1)
	for i := window(cur, len(ts), h-1); i < len(ts) && len(lines) < h; i++ {
		t := ts[i]
		left := t.Expires.Sub(m.now())
		expires, state := fmtSpan(left), s.ok.Render("valid")
		if t.Expired || left <= 0 {
			expires, state = "–", s.bad.Render("expired")
		}
		line := row(t.Token, displayRepo(t.Image), t.TargetImage, expires, fmt.Sprint(t.Pulls), state)
		if i == cur {
			line = s.selected.Render(fit(line, w))
		}
		lines = append(lines, line)
	}
	return lines
}
