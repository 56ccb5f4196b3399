package tui

import (
	"fmt"
	"strings"

	"github.com/tower-reg/tower-reg/tui/state"
)

// detailLines is the details view of the selection: every digest whole.
func (m *Model) detailLines(w int) []string {
	if d := m.panes[m.pane].detail(w); d != nil {
		return d
	}
	return []string{"", m.styles.dim.Render("Nothing selected.")}
}

// logDetail is the details view of the selected log line: its
// attributes one a line.
func (m *Model) logDetail(w int) []string {
	ls := m.st.FilterLogs(m.query[paneLog])
	c := m.cursor[paneLog]
	if c >= len(ls) {
		return nil
	}
	l := ls[c]
	out := []string{m.styles.title.Render("Log line"), ""}
	text := l.Time.In(m.loc).Format("2006-01-02 15:04:05") + " " + l.Level.String() + " " + l.Msg
	out = append(out, wrapIndent(text, w, 2)...)
	for _, a := range splitAttrs(l.Attrs) {
		out = append(out, wrapIndent("  "+a, w, 4)...)
	}
	return out
}

// splitAttrs puts each key=value of a log line on its own line; quoted
// values keep their spaces.
func splitAttrs(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && quoted && i+1 < len(s):
			cur.WriteByte(ch)
			i++
			cur.WriteByte(s[i])
			continue
		case ch == '"':
			quoted = !quoted
		case ch == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteByte(ch)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func (m *Model) pullDetail(p *state.Pull, w int) []string {
	s := m.styles
	out := []string{s.title.Render("Pull of " + m.displayRepo(p.Repo) + strings.TrimPrefix(p.Image(), p.Repo)), ""}
	kv := func(label, v string) { out = append(out, "  "+s.label.Render(fit(label, 10))+" "+v) }
	kv("client", p.Client)
	if p.Token != "" {
		kv("token", p.Token)
	}
	kv("started", p.Start.In(m.loc).Format("15:04:05.000")+" · took "+fmtDur(p.Duration()))
	kv("platforms", orDash(strings.Join(p.Platforms, ", ")))
	status := p.State()
	if p.State() == state.StatePulling {
		status = fmt.Sprintf("pulling %.0f%%", p.Progress()*100)
	}
	status = fmt.Sprintf("%s · blobs %d/%d · %s", status, p.BlobsDone, p.BlobsStarted, fmtBytes(p.BytesDone))
	if n := len(p.Redirected); n > 0 {
		// The bytes are the daemon's; the redirected blobs came from elsewhere.
		status += fmt.Sprintf(" · %d redirected", n)
	}
	kv("status", status)
	kv("copy", m.pullCopyLine(p))
	digest := func(label string, ds ...string) {
		out = append(out, "  "+s.label.Render(label))
		if len(ds) == 0 {
			out = append(out, "    "+s.dim.Render("– (not fetched in this pull)"))
		}
		for _, d := range ds {
			out = append(out, "    "+d)
		}
	}
	if p.Digest != "" {
		digest("upstream manifest", p.Upstream)
		digest("rewritten manifest", p.Digest)
	}
	digest("rewritten config", p.Configs...)
	digest("injected layer", p.Injected...)
	if p.Err != "" {
		out = append(out, "  "+s.bad.Render(fmt.Sprintf("error (%d)", p.ErrStatus)))
		for _, l := range wrapIndent(p.Err, w-4, 0) {
			out = append(out, "    "+l)
		}
	}
	out = append(out, "", s.title.Render(fmt.Sprintf("Requests (%d)", len(p.Requests))))
	for _, r := range p.Requests {
		out = append(out, m.requestLines(r)...)
	}
	return out
}

func (m *Model) requestLines(r state.Request) []string {
	s := m.styles
	what := r.Kind
	if r.Kind == "blob" {
		what += " " + r.Source
	}
	status := s.ok.Render(fmt.Sprint(r.Status))
	if r.Status >= 400 || r.Err != "" {
		status = s.bad.Render(fmt.Sprint(r.Status))
	}
	line := fmt.Sprintf("  %s %-4s %-13s %s %8s %6s", r.Time.In(m.loc).Format("15:04:05.000"), r.Method, what, status,
		sizeOrDash(r), fmtDur(r.Duration))
	if r.Cached {
		line += " cached"
	}
	ref := r.Ref
	if !strings.HasPrefix(ref, "sha256:") {
		line += " " + ref
		ref = r.Digest
	}
	out := []string{line}
	if ref != "" {
		out = append(out, "      "+s.dim.Render(ref))
	}
	if r.Err != "" {
		out = append(out, "      "+s.bad.Render(r.Err))
	}
	return out
}

func sizeOrDash(r state.Request) string {
	if r.Kind != "blob" || r.Method != "GET" {
		return "–"
	}
	return fmtBytes(r.Bytes)
}

func (m *Model) tokenDetail(t *state.Token, w int) []string {
	s := m.styles
	out := []string{s.title.Render("Container token " + t.Token), ""}
	kv := func(label, v string) {
		for i, l := range wrapIndent(v, w-15, 0) {
			if i == 0 {
				out = append(out, "  "+s.label.Render(fit(label, 12))+" "+l)
			} else {
				out = append(out, strings.Repeat(" ", 15)+l)
			}
		}
	}
	kv("image", t.Image)
	kv("target image", t.TargetImage)
	kv("issued", t.Issued.In(m.loc).Format("2006-01-02 15:04:05"))
	left := t.Expires.Sub(m.now())
	exp := t.Expires.In(m.loc).Format("2006-01-02 15:04:05")
	if t.Expired || left <= 0 {
		exp += " (expired)"
	} else {
		exp += " (in " + fmtSpan(left) + ")"
	}
	kv("expires", exp)
	kv("layers", fmt.Sprint(t.Layers))
	kv("pulls", fmt.Sprint(t.Pulls))
	kv("copy", "docker run "+t.TargetImage)
	return out
}
