package tui

import (
	"context"
	"errors"

	tea "charm.land/bubbletea/v2"
)

// Run shows the dashboard on the terminal until the user quits (q,
// ctrl+c) or ctx ends; either is a normal end.
func Run(ctx context.Context, o Options) error {
	p := tea.NewProgram(New(ctx, o), tea.WithContext(ctx))
	_, err := p.Run()
	if err != nil && ctx.Err() != nil && errors.Is(err, tea.ErrProgramKilled) {
		return nil
	}
	return err
}
