package state

import (
	"testing"

	"github.com/tower-reg/tower-reg/internal/depcheck"
)

// TestPureDeps keeps the state a pure fold of events: it reads the event
// and status types, and builds with neither the daemon (its upstream
// client, metrics, tunnel) nor a terminal library.
func TestPureDeps(t *testing.T) {
	depcheck.Check(t, ".", depcheck.Rules{
		Own:       []string{"daemon/event", "daemon/admin"},
		Forbidden: []string{"golang.ngrok.com/", "github.com/prometheus/", "github.com/google/go-containerregistry/", "charm.land/", "github.com/charmbracelet/"},
	})
}
