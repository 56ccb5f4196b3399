package tui

import "charm.land/bubbles/v2/key"

// keyMap holds every binding; the help line and the full help are made
// from it, so they cannot drift from what the keys do.
type keyMap struct {
	Pane, Panes, Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Enter, Back, Filter, Copy, Repack, Help, Quit        key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Pane:     key.NewBinding(key.WithKeys("tab", "shift+tab"), key.WithHelp("tab", "next pane")),
		Panes:    key.NewBinding(key.WithKeys("1", "2", "3", "4"), key.WithHelp("1-4", "pulls/tokens/layer/log")),
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+d", "space"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/home", "newest")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G/end", "oldest")),
		Enter:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Back:     key.NewBinding(key.WithKeys("esc", "backspace"), key.WithHelp("esc", "back")),
		Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Copy:     key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "copy pull/run")),
		Repack:   key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "re-pack")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp implements help.KeyMap: the line always at the bottom.
func (k keyMap) ShortHelp() []key.Binding {
	// Short enough for 80 columns: `?` and `q` must never be cut off.
	short := func(b key.Binding, keys, desc string) key.Binding {
		b.SetHelp(keys, desc)
		return b
	}
	return []key.Binding{short(k.Pane, "tab", "pane"), k.Enter, k.Filter, short(k.Copy, "c", "copy"),
		short(k.Repack, "r", "repack"), k.Help, k.Quit}
}

// FullHelp implements help.KeyMap: the `?` screen.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Pane, k.Panes, k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Enter, k.Back, k.Filter, k.Copy, k.Repack, k.Help, k.Quit},
	}
}
