package feed

import (
	"testing"

	"github.com/tower-reg/tower-reg/internal/depcheck"
)

// TestDeps: the dashboard's client speaks HTTP to a daemon; it needs the
// event and status types, never the daemon's own packages.
func TestDeps(t *testing.T) {
	depcheck.Check(t, ".", depcheck.Rules{
		Own:       []string{"daemon/event", "daemon/admin"},
		Forbidden: []string{"golang.ngrok.com/", "github.com/prometheus/"},
	})
}
