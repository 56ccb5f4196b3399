package tui

import (
	"context"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/tui/state"
)

const (
	// frameInterval coalesces renders: events mark the screen stale and
	// one frame tick redraws it, 15 times a second at most.
	frameInterval = time.Second / 15
	// maxBatch bounds the events one message carries, so keys stay
	// responsive under a flood.
	maxBatch = 2048
	// statusTimeout bounds one status request.
	statusTimeout = 2 * time.Second
	// messageFor is how long a note (copied, re-pack asked) stays shown.
	messageFor = 4 * time.Second
)

// Options configure the dashboard.
type Options struct {
	Source Source
	// Logs, when set, feeds the log pane with the process's own warnings.
	Logs *LogSink
	// Now is the clock (time.Now when nil); tests fix it.
	Now func() time.Time
	// NoColor draws without colours (NO_COLOR).
	NoColor bool
	// Location is the time zone times are shown in (time.Local when nil).
	Location *time.Location
}

// Model is the dashboard's Bubble Tea model.
type Model struct {
	ctx    context.Context
	src    Source
	logs   *LogSink
	now    func() time.Time
	loc    *time.Location
	st     *state.State
	keys   keyMap
	help   help.Model
	filter textinput.Model

	noColor, dark bool
	styles        styles

	width, height int
	panes         [numPanes]pane
	pane          int
	cursor        [numPanes]int // selected row, or scroll offset for layer and log
	detail        bool
	detailScroll  int
	showHelp      bool
	filtering     bool
	query         [numPanes]string

	message   string
	messageAt time.Time
	streamEnd bool

	// frame is the last rendered screen; dirty says events changed the
	// state since.
	frame        string
	dirty        bool
	framePending bool
}

// Messages.
type (
	batchMsg struct {
		events []event.Event
		logs   []state.LogLine
		closed bool
	}
	statusMsg struct {
		st  admin.Status
		err error
	}
	tickMsg   time.Time
	frameMsg  struct{}
	repackMsg struct{ err error }
)

// New returns the dashboard's model.
func New(ctx context.Context, o Options) *Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "filter"
	m := &Model{ctx: ctx, src: o.Source, logs: o.Logs, now: o.Now, loc: o.Location, st: state.New(), keys: newKeyMap(),
		help: help.New(), filter: ti, noColor: o.NoColor, dark: true, width: 80, height: 24}
	m.panes = m.newPanes()
	m.setStyles()
	return m
}

func (m *Model) setStyles() {
	m.styles = newStyles(m.dark, m.noColor)
	if m.noColor {
		m.help.Styles = help.Styles{}
	} else {
		m.help.Styles = help.DefaultStyles(m.dark)
	}
}

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.waitEvents(), m.fetchStatus(), tick(), tea.RequestBackgroundColor)
}

func tick() tea.Cmd { return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) }) }

// waitEvents waits for the next event or log line, then takes whatever
// else is already queued: one message per burst, not per event.
func (m *Model) waitEvents() tea.Cmd {
	evc := m.src.Events()
	var logc <-chan state.LogLine
	if m.logs != nil {
		logc = m.logs.c
	}
	return func() tea.Msg {
		var b batchMsg
		take := func(e event.Event, ok bool) bool {
			if !ok {
				b.closed = true
				return false
			}
			b.events = append(b.events, e)
			return true
		}
		select {
		case e, ok := <-evc:
			if !take(e, ok) {
				return b
			}
		case l := <-logc:
			b.logs = append(b.logs, l)
		case <-m.ctx.Done():
			return nil
		}
		for len(b.events)+len(b.logs) < maxBatch {
			select {
			case e, ok := <-evc:
				if !take(e, ok) {
					return b
				}
			case l := <-logc:
				b.logs = append(b.logs, l)
			default:
				return b
			}
		}
		return b
	}
}

func (m *Model) fetchStatus() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.ctx, statusTimeout)
		defer cancel()
		st, err := m.src.Status(ctx)
		return statusMsg{st: st, err: err}
	}
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case batchMsg:
		for _, e := range msg.events {
			m.st.Apply(e)
		}
		for _, l := range msg.logs {
			m.st.AddLog(l)
		}
		if msg.closed {
			m.streamEnd = true
		} else {
			cmd = m.waitEvents()
		}
		m.dirty = true
		if !m.framePending {
			m.framePending = true
			cmd = tea.Batch(cmd, tea.Tick(frameInterval, func(time.Time) tea.Msg { return frameMsg{} }))
		}
		return m, cmd
	case frameMsg:
		m.framePending = false
		if m.dirty {
			m.render()
		}
		return m, nil
	case statusMsg:
		if msg.err != nil {
			m.note("status: " + msg.err.Error())
		} else {
			m.st.SetStatus(msg.st)
		}
	case tickMsg:
		if m.message != "" && m.now().Sub(m.messageAt) > messageFor {
			m.message = ""
		}
		cmd = tea.Batch(tick(), m.fetchStatus())
	case repackMsg:
		if msg.err != nil {
			m.note("re-pack failed: " + msg.err.Error())
		} else {
			m.note("re-packed")
		}
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.BackgroundColorMsg:
		m.dark = msg.IsDark()
		m.setStyles()
	case tea.KeyPressMsg:
		cmd = m.key(msg)
	default:
		return m, nil
	}
	m.render()
	return m, cmd
}

func (m *Model) note(s string) { m.message, m.messageAt = s, m.now() }

func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	if m.filtering {
		switch msg.String() {
		case "enter":
			m.filtering = false
			m.filter.Blur()
		case "esc":
			m.filtering = false
			m.filter.Blur()
			m.filter.SetValue("")
			m.query[m.pane] = ""
		default:
			var cmd tea.Cmd
			m.filter, cmd = m.filter.Update(msg)
			m.query[m.pane] = m.filter.Value()
			m.cursor[m.pane] = 0
			return cmd
		}
		return nil
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case m.showHelp:
		if key.Matches(msg, k.Help, k.Back) {
			m.showHelp = false
		}
		return nil
	case key.Matches(msg, k.Help):
		m.showHelp = true
	case key.Matches(msg, k.Back):
		if m.detail {
			m.detail = false
		} else if m.query[m.pane] != "" {
			m.query[m.pane] = ""
		}
	case key.Matches(msg, k.Pane):
		step := 1
		if msg.String() == "shift+tab" {
			step = numPanes - 1
		}
		m.switchPane((m.pane + step) % numPanes)
	case key.Matches(msg, k.Panes):
		m.switchPane(int(msg.String()[0] - '1'))
	case key.Matches(msg, k.Up):
		m.move(-1)
	case key.Matches(msg, k.Down):
		m.move(1)
	case key.Matches(msg, k.PageUp):
		m.move(-m.bodyHeight())
	case key.Matches(msg, k.PageDown):
		m.move(m.bodyHeight())
	case key.Matches(msg, k.Top):
		m.move(-1 << 30)
	case key.Matches(msg, k.Bottom):
		m.move(1 << 30)
	case key.Matches(msg, k.Enter):
		if m.panes[m.pane].hasDetail() && m.rows() > 0 {
			m.detail, m.detailScroll = true, 0
		}
	case key.Matches(msg, k.Filter):
		m.detail = false
		m.filtering = true
		m.filter.SetValue(m.query[m.pane])
		m.filter.CursorEnd()
		return m.filter.Focus()
	case key.Matches(msg, k.Copy):
		if line := m.copyLine(); line != "" {
			m.note("copied: " + line)
			return tea.SetClipboard(line)
		}
		m.note("nothing to copy here")
	case key.Matches(msg, k.Repack):
		m.note("re-packing the layer…")
		return func() tea.Msg { return repackMsg{err: m.src.Repack(m.ctx)} }
	}
	return nil
}

func (m *Model) switchPane(p int) {
	if p >= 0 && p < numPanes {
		m.pane, m.detail = p, false
	}
}

// move moves the selection, or scrolls a pane or the details.
func (m *Model) move(d int) {
	if m.detail {
		m.detailScroll = max(0, m.detailScroll+d)
		return
	}
	n := m.rows()
	c := m.cursor[m.pane] + d
	m.cursor[m.pane] = max(0, min(c, n-1))
}

// rows is how many rows (or lines, for scrolled panes) the pane has.
func (m *Model) rows() int { return m.panes[m.pane].rows() }

// pullCopyLine is the command that gets a pull's image again: through
// its container token if it went through one, as that image has the
// token's layers and config and the plain name has not.
func (m *Model) pullCopyLine(p *state.Pull) string {
	if p.Token != "" {
		for _, t := range m.st.Tokens {
			if t.Token == p.Token {
				return "docker run " + t.TargetImage
			}
		}
	}
	return "docker pull " + m.pullRef(p)
}

// copyLine is the command line for the selection: a pull, or a token's
// `docker run`.
func (m *Model) copyLine() string { return m.panes[m.pane].copyLine() }

func (m *Model) selectedPull() *state.Pull {
	ps := m.st.FilterPulls(m.query[panePulls])
	if c := m.cursor[panePulls]; c < len(ps) {
		return ps[c]
	}
	return nil
}

func (m *Model) selectedToken() *state.Token {
	ts := m.st.FilterTokens(m.query[paneTokens])
	if c := m.cursor[paneTokens]; c < len(ts) {
		return ts[c]
	}
	return nil
}

// View implements tea.Model. It returns the last frame: rendering
// happens in Update, on a key or on the frame tick.
func (m *Model) View() tea.View {
	if m.frame == "" {
		m.render()
	}
	v := tea.NewView(m.frame)
	v.AltScreen = true
	v.WindowTitle = "tower-reg"
	return v
}

func (m *Model) render() {
	m.dirty = false
	m.frame = m.screen()
}
