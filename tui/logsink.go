package tui

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/tower-reg/tower-reg/tui/state"
)

// LogSink is a slog.Handler whose records the log pane shows: `up` tees
// its logger into it, so warnings and errors stay visible on a screen the
// dashboard owns. A full buffer drops records rather than block a logger.
type LogSink struct {
	level  slog.Leveler
	c      chan state.LogLine
	prefix string // group prefix
	attrs  string // pre-formatted attributes
}

var _ slog.Handler = (*LogSink)(nil)

// NewLogSink returns a sink for records at level or above.
func NewLogSink(level slog.Leveler) *LogSink {
	return &LogSink{level: level, c: make(chan state.LogLine, 256)}
}

// Enabled implements slog.Handler.
func (s *LogSink) Enabled(_ context.Context, l slog.Level) bool { return l >= s.level.Level() }

// Handle implements slog.Handler.
func (s *LogSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(s.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, s.prefix, a)
		return true
	})
	select {
	case s.c <- state.LogLine{Time: r.Time, Level: r.Level, Msg: r.Message, Attrs: strings.TrimSpace(b.String())}:
	default:
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (s *LogSink) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(s.attrs)
	for _, a := range as {
		writeAttr(&b, s.prefix, a)
	}
	c := *s
	c.attrs = b.String()
	return &c
}

// WithGroup implements slog.Handler.
func (s *LogSink) WithGroup(name string) slog.Handler {
	if name == "" {
		return s
	}
	c := *s
	c.prefix = s.prefix + name + "."
	return &c
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			writeAttr(b, p, g)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	fmt.Fprintf(b, " %s%s=%s", prefix, a.Key, v)
}
