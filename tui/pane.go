package tui

// pane is one of the dashboard's tabs, behind what the root model needs of
// it: the root keeps what every pane has (the selection or scroll offset,
// the filter, the details toggle) and the keys; a pane renders, counts,
// and answers for its selection. A new pane is one more implementation
// and one more entry in Model.panes, not a case in every switch.
type pane interface {
	// title names the tab; count is the figure beside it.
	title() string
	count() int
	// rows is how many rows (or lines, for a scrolled pane) the cursor
	// moves through, as filtered.
	rows() int
	// body renders the pane in w columns and at most h rows.
	body(w, h int) []string
	// hasDetail says whether enter opens the details of a row; detail
	// renders those of the selection, nil when there is none.
	hasDetail() bool
	detail(w int) []string
	// copyLine is the command line for the selection, "" when none.
	copyLine() string
}

// The panes, in tab order: each reads the model's state, and its own
// cursor and filter by its index.
const (
	panePulls = iota
	paneTokens
	paneLayer
	paneLog
	numPanes
)

func (m *Model) newPanes() [numPanes]pane {
	return [numPanes]pane{pullsPane{m}, tokensPane{m}, layerPane{m}, logPane{m}}
}

type pullsPane struct{ m *Model }

func (p pullsPane) title() string          { return "Pulls" }
func (p pullsPane) count() int             { return len(p.m.st.Pulls) }
func (p pullsPane) rows() int              { return len(p.m.st.FilterPulls(p.m.query[panePulls])) }
func (p pullsPane) body(w, h int) []string { return p.m.pullLines(w, h) }
func (p pullsPane) hasDetail() bool        { return true }

func (p pullsPane) detail(w int) []string {
	if s := p.m.selectedPull(); s != nil {
		return p.m.pullDetail(s, w)
	}
	return nil
}

func (p pullsPane) copyLine() string {
	if s := p.m.selectedPull(); s != nil {
		return p.m.pullCopyLine(s)
	}
	return ""
}

type tokensPane struct{ m *Model }

func (p tokensPane) title() string          { return "Tokens" }
func (p tokensPane) count() int             { return len(p.m.st.Tokens) }
func (p tokensPane) rows() int              { return len(p.m.st.FilterTokens(p.m.query[paneTokens])) }
func (p tokensPane) body(w, h int) []string { return p.m.tokenLines(w, h) }
func (p tokensPane) hasDetail() bool        { return true }

func (p tokensPane) detail(w int) []string {
	if t := p.m.selectedToken(); t != nil {
		return p.m.tokenDetail(t, w)
	}
	return nil
}

func (p tokensPane) copyLine() string {
	if t := p.m.selectedToken(); t != nil {
		return "docker run " + t.TargetImage
	}
	return ""
}

// layerPane scrolls as a whole: its cursor is the scroll offset.
type layerPane struct{ m *Model }

func (p layerPane) title() string       { return "Layer" }
func (p layerPane) count() int          { return len(p.m.st.Generations) }
func (p layerPane) rows() int           { return len(p.m.layerLines(p.m.width)) }
func (p layerPane) hasDetail() bool     { return false }
func (p layerPane) detail(int) []string { return nil }
func (p layerPane) copyLine() string    { return "" }
func (p layerPane) body(w, h int) []string {
	return scroll(p.m.layerLines(w), &p.m.cursor[paneLayer], h)
}

type logPane struct{ m *Model }

func (p logPane) title() string          { return "Log" }
func (p logPane) count() int             { return len(p.m.st.Logs) }
func (p logPane) rows() int              { return len(p.m.st.FilterLogs(p.m.query[paneLog])) }
func (p logPane) body(w, h int) []string { return p.m.logLines(w, h) }
func (p logPane) hasDetail() bool        { return true }
func (p logPane) detail(w int) []string  { return p.m.logDetail(w) }
func (p logPane) copyLine() string       { return "" }
