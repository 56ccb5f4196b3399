package state

import "strings"

// FilterPulls returns the pulls matching q (any case), newest first: the
// live end of the list is the one a user watches.
func (s *State) FilterPulls(q string) []*Pull {
	q = strings.ToLower(q)
	out := make([]*Pull, 0, len(s.Pulls))
	for i := len(s.Pulls) - 1; i >= 0; i-- {
		if s.Pulls[i].Match(q) {
			out = append(out, s.Pulls[i])
		}
	}
	return out
}

// FilterTokens returns the tokens matching q, newest first.
func (s *State) FilterTokens(q string) []*Token {
	q = strings.ToLower(q)
	out := make([]*Token, 0, len(s.Tokens))
	for i := len(s.Tokens) - 1; i >= 0; i-- {
		if s.Tokens[i].Match(q) {
			out = append(out, s.Tokens[i])
		}
	}
	return out
}

// FilterLogs returns the log lines matching q, newest first.
func (s *State) FilterLogs(q string) []LogLine {
	q = strings.ToLower(q)
	out := make([]LogLine, 0, len(s.Logs))
	for i := len(s.Logs) - 1; i >= 0; i-- {
		if s.Logs[i].Match(q) {
			out = append(out, s.Logs[i])
		}
	}
	return out
}
