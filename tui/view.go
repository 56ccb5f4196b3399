package tui

import (
	"fmt"
	"net"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/tower-reg/tower-reg/daemon/event"
)

// Screen rows around the body: three header lines, the tab line, the
// help line; and the traffic line, on a screen tall enough to spare it.
const (
	chromeRows       = 5
	minTrafficHeight = 12
)

func (m *Model) bodyHeight() int {
	h := m.height - chromeRows
	if m.height >= minTrafficHeight {
		h--
	}
	return max(1, h)
}

// screen renders the whole frame: exactly height lines of at most width
// cells, so a resize never leaves a line wrapped.
func (m *Model) screen() string {
	w := max(m.width, 20)
	lines := m.header(w)
	lines = append(lines, m.tabs(w))
	var body []string
	switch {
	case m.showHelp:
		body = m.helpLines(w)
	case m.detail:
		body = m.detailLines(w)
		body = scroll(body, &m.detailScroll, m.bodyHeight())
	default:
		body = m.paneLines(w, m.bodyHeight())
	}
	for len(body) < m.bodyHeight() {
		body = append(body, "")
	}
	lines = append(lines, body[:m.bodyHeight()]...)
	m.help.SetWidth(w)
	lines = append(lines, m.help.ShortHelpView(m.keys.ShortHelp()))
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "…")
		}
	}
	return strings.Join(lines, "\n")
}

// scroll clips lines to a window of h from *off, keeping *off in range.
func scroll(lines []string, off *int, h int) []string {
	*off = max(0, min(*off, len(lines)-h))
	return lines[*off:]
}

func (m *Model) header(w int) []string {
	s, st := m.styles, m.st.Status
	listen := st.Listen
	if listen == "" {
		listen = "starting…"
	}
	version := st.Version
	if version == "" {
		version = "…"
	}
	l1 := s.title.Render("tower-reg "+version) + s.dim.Render(" · ") + listen +
		s.dim.Render(" · default ") + orDash(st.DefaultRegistry)
	if !st.Started.IsZero() {
		l1 += s.dim.Render(" · up ") + fmtSpan(m.now().Sub(st.Started))
	}

	l2 := s.label.Render("tunnel ")
	switch t := m.st.Tunnel; {
	case t == nil:
		l2 += s.dim.Render("off")
	default:
		state := t.State
		switch t.State {
		case event.TunnelUp:
			state = s.ok.Render(state)
		case event.TunnelDown:
			state = s.bad.Render(state)
		default:
			state = s.warn.Render(state)
		}
		l2 += t.Provider + " " + state
		if t.URL != "" && t.State == event.TunnelUp {
			l2 += " " + t.URL
		}
		if t.Err != "" {
			l2 += s.dim.Render(": ") + t.Err
		}
	}
	if host := m.publicHost(); host != "" && st.Tunnel.Login != "" {
		l2 += s.dim.Render(" · ") + "docker login " + host + " -u " + st.Tunnel.Login
	}
	if m.streamEnd {
		l2 += s.bad.Render("  event stream ended")
	}

	g := m.st.Current
	l3 := s.label.Render("layer ")
	if g.GzipDigest == "" {
		l3 += s.dim.Render("not packed yet")
	} else {
		l3 += fmt.Sprintf("gen %d %s", g.Number, short(g.GzipDigest))
	}
	c := st.Counts
	l3 += s.dim.Render(" │ ") + fmt.Sprintf("pulls %d · blobs %d · %s", c.Pulls, c.Blobs, fmtBytes(c.Bytes))
	if c.Errors > 0 {
		l3 += s.dim.Render(" · ") + s.bad.Render(fmt.Sprintf("errors %d", c.Errors))
	} else {
		l3 += s.dim.Render(" · errors 0")
	}
	if m.height < minTrafficHeight {
		return []string{l1, l2, l3}
	}
	return []string{l1, l2, l3, m.trafficLine()}
}

// trafficLine is what the public face cost since the daemon started, in
// the terms of the tunnel's plan: the blob bytes it sent, and the redirects
// that sent clients elsewhere with what they saved. Saved is a lower
// bound ("≥") when some redirects' sizes were never seen.
func (m *Model) trafficLine() string {
	s, t := m.styles, m.st.Status.Counts.Traffic
	// Blobs: the manifests and token answers, a few KiB a pull, are not
	// counted.
	l := s.label.Render("public ") + "blobs sent " + fmtBytes(t.PublicBytes)
	r := t.Redirects
	if r.Upstream+r.Offload == 0 {
		return l + s.dim.Render(" · no redirects")
	}
	l += s.dim.Render(" · ") + fmt.Sprintf("redirects %d upstream, %d offload", r.Upstream, r.Offload)
	saved := fmtBytes(t.SavedBytes)
	if t.Unsized > 0 {
		saved = "≥ " + saved
	}
	return l + s.dim.Render(" · ") + s.ok.Render("saved "+saved)
}

// publicHost is where other machines reach the public handler: the
// tunnel's host while it is up, else the first --public-listen address.
func (m *Model) publicHost() string {
	if t := m.st.Tunnel; t != nil && t.State == event.TunnelUp && t.URL != "" {
		return strings.TrimPrefix(strings.TrimPrefix(t.URL, "https://"), "http://")
	}
	if l := m.st.Status.Tunnel.PublicListen; len(l) > 0 {
		// A wildcard address is reached by this machine's own name.
		if h, port, err := net.SplitHostPort(l[0]); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
			return "THIS-HOST:" + port
		}
		return l[0]
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// tabs is the pane bar, with the filter being typed or the last note at
// its right.
func (m *Model) tabs(w int) string {
	s := m.styles
	var b strings.Builder
	for i, p := range m.panes {
		label := fmt.Sprintf(" %d %s %d ", i+1, p.title(), p.count())
		if i == m.pane {
			b.WriteString(s.tabOn.Render(label))
		} else {
			b.WriteString(s.tabOff.Render(label))
		}
	}
	left := b.String()
	var rightText string
	switch {
	case m.filtering:
		m.filter.SetWidth(max(8, w-ansi.StringWidth(left)-4))
		rightText = m.filter.View()
	case m.message != "":
		rightText = s.warn.Render(m.message)
	case m.query[m.pane] != "":
		rightText = s.dim.Render("filter: ") + m.query[m.pane] + s.dim.Render(" (esc clears)")
	case m.detail:
		rightText = s.dim.Render("details · esc back")
	}
	if rightText == "" {
		return left
	}
	room := w - ansi.StringWidth(left) - 1
	if room < 8 {
		return left
	}
	rightText = ansi.Truncate(rightText, room, "…")
	return left + strings.Repeat(" ", w-ansi.StringWidth(left)-ansi.StringWidth(rightText)) + rightText
}

func (m *Model) paneLines(w, h int) []string { return m.panes[m.pane].body(w, h) }

// window returns the first row to show so that the cursor stays in a
// body of h rows.
func window(cursor, n, h int) int {
	if cursor < h {
		return 0
	}
	return min(cursor-h+1, max(0, n-h))
}

func (m *Model) helpLines(w int) []string {
	h := m.help
	h.ShowAll = true
	var lines []string
	// First, as it is what another machine needs and the log is not on
	// screen while the dashboard is.
	if host, t := m.publicHost(), m.st.Status.Tunnel; host != "" && t.Login != "" {
		pw := "the password set in the config"
		if t.PasswordFile != "" {
			pw = "the password in " + t.PasswordFile
		}
		lines = append(lines, m.styles.title.Render("Public handler"),
			"  other machines log in with: docker login "+host+" -u "+t.Login,
			"  and "+pw, "")
	}
	lines = append(lines, m.styles.title.Render("Keys"), "")
	lines = append(lines, strings.Split(h.FullHelpView(m.keys.FullHelp()), "\n")...)
	lines = append(lines, "",
		m.styles.title.Render("Panes"),
		"  1 Pulls   every pull: client, image, digests upstream → rewritten, blobs",
		"  2 Tokens  container tokens: image, target, time left, pulls",
		"  3 Layer   the injected layer's digests, last reload, generations",
		"  4 Log     warnings and errors (the full log is in the log file)",
		"",
		m.styles.dim.Render("Tables shorten digests to 8 digits; enter shows them whole."),
		m.styles.dim.Render("? or esc closes this help."))
	return lines
}
