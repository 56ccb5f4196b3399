package tui

import (
	"fmt"
	"strings"

	"github.com/tower-reg/tower-reg/tui/state"
)

// layerLines is the layer pane, scrolled as a whole. Digests are written
// whole: one beside its label when the screen is wide enough, else on a
// line of its own.
func (m *Model) layerLines(w int) []string {
	s := m.styles
	g := m.st.Current
	if g.GzipDigest == "" {
		return []string{"", s.dim.Render("The layer is not packed yet.")}
	}
	kv := func(indent, label, digest string, lw int) []string {
		head := indent + fit(label, lw) + " "
		if len(head)+len(digest) <= w {
			return []string{head + digest}
		}
		return []string{indent + label, indent + "  " + digest}
	}
	src := m.st.Status.Layer.Source
	title := fmt.Sprintf("Generation %d", g.Number)
	if src != "" {
		title += s.dim.Render(" · " + src)
	}
	lines := []string{s.title.Render("Current layer") + "  " + title}
	lines = append(lines, kv("  ", "tar", orDash(g.TarDigest), 6)...)
	lines = append(lines, kv("  ", "gzip", g.GzipDigest, 6)...)
	size := fmtBytes(g.Size)
	if g.SetSize > g.Size {
		size += s.dim.Render(" common · ") + fmtBytes(g.SetSize) + s.dim.Render(" with overlays")
	}
	lines = append(lines, "  "+fit("size", 6)+" "+size+s.dim.Render(" · "+plural(g.Files, "file")))
	if names := g.PlatformNames(); len(names) > 0 {
		lines = append(lines, "  "+s.label.Render("per-platform payloads"))
		for _, p := range names {
			d := g.Platforms[p]
			if d == "" {
				d = s.dim.Render("(digest not known yet)")
			}
			lines = append(lines, kv("    ", p, d, 13)...)
		}
	} else {
		lines = append(lines, "  "+s.dim.Render("one payload for every platform (no .platforms overlays)"))
	}

	lines = append(lines, "", s.title.Render("Last reload"))
	if r := m.st.LastReload; r == nil {
		lines = append(lines, "  "+s.dim.Render("none since the dashboard started"))
	} else {
		trigger := r.Trigger
		if trigger == "" {
			trigger = "(rescan)"
		}
		outcome := s.ok.Render(fmt.Sprintf("new generation %d", r.Generation))
		switch {
		case r.Err != "":
			outcome = s.bad.Render("failed; generation " + fmt.Sprint(r.Generation) + " keeps serving")
		case !r.Changed:
			outcome = s.dim.Render("unchanged")
		}
		lines = append(lines, fmt.Sprintf("  %s · trigger %s · packed in %s · %s",
			r.Time.In(m.loc).Format("15:04:05"), trigger, fmtDur(r.Duration), outcome))
		if r.Err != "" {
			for _, l := range wrapIndent("error: "+r.Err, w-2, 7) {
				lines = append(lines, "  "+s.bad.Render(l))
			}
		}
	}

	lines = append(lines, "", s.title.Render("Generations"))
	for i := len(m.st.Generations) - 1; i >= 0; i-- {
		lines = append(lines, m.generationLines(m.st.Generations[i], w)...)
	}
	return lines
}

func (m *Model) generationLines(g state.Generation, w int) []string {
	trigger := g.Trigger
	if trigger == "" {
		trigger = "(start)"
	}
	when := g.Time.In(m.loc).Format("15:04:05")
	if g.Time.IsZero() {
		when, trigger = "   –    ", "(before attach)"
	}
	head := fmt.Sprintf("  %-3d %s  %s  %s", g.Number, when, fit(trigger, 16), right(fmtBytes(max(g.Size, g.SetSize)), 8))
	if len(head)+2+len(g.GzipDigest) <= w {
		return []string{head + "  " + g.GzipDigest}
	}
	return []string{head, strings.Repeat(" ", 6) + g.GzipDigest}
}
