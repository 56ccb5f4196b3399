package tui

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// styles are the dashboard's looks. Every meaning also has a form
// without colour (bold, reverse, a word), so NO_COLOR loses nothing.
type styles struct {
	title, dim, label, selected, tabOn, tabOff lipgloss.Style
	ok, warn, bad, busy, barFull, barEmpty     lipgloss.Style
}

func newStyles(dark, noColor bool) styles {
	s := styles{
		title:    lipgloss.NewStyle().Bold(true),
		dim:      lipgloss.NewStyle(),
		label:    lipgloss.NewStyle().Bold(true),
		selected: lipgloss.NewStyle().Reverse(true),
		tabOn:    lipgloss.NewStyle().Bold(true).Reverse(true),
		tabOff:   lipgloss.NewStyle(),
		ok:       lipgloss.NewStyle(),
		warn:     lipgloss.NewStyle().Bold(true),
		bad:      lipgloss.NewStyle().Bold(true),
		busy:     lipgloss.NewStyle(),
		barFull:  lipgloss.NewStyle(),
		barEmpty: lipgloss.NewStyle(),
	}
	if noColor {
		return s
	}
	ld := lipgloss.LightDark(dark)
	c := func(light, darkc string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(darkc)) }
	accent := c("#5A3FC0", "#B4A4FF")
	s.title = s.title.Foreground(accent)
	s.dim = s.dim.Foreground(c("#6B6B6B", "#8A8A8A"))
	s.label = s.label.Foreground(c("#303030", "#D0D0D0"))
	s.selected = lipgloss.NewStyle().Background(c("#DCD6FF", "#3C3470")).Foreground(c("#000000", "#FFFFFF"))
	s.tabOn = lipgloss.NewStyle().Bold(true).Background(accent).Foreground(c("#FFFFFF", "#1A1A1A"))
	s.ok = s.ok.Foreground(c("#1E7B34", "#6BD68A"))
	s.warn = s.warn.Foreground(c("#9A6700", "#E8C36A"))
	s.bad = s.bad.Foreground(c("#B3261E", "#FF7A70"))
	s.busy = s.busy.Foreground(c("#0B61A4", "#6CB6FF"))
	s.barFull = s.barFull.Foreground(c("#0B61A4", "#6CB6FF"))
	s.barEmpty = s.barEmpty.Foreground(c("#C8C8C8", "#444444"))
	return s
}
