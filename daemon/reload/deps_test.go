package reload

import (
	"testing"

	"github.com/tower-reg/tower-reg/internal/depcheck"
)

// TestDeps: generations sit below the handlers and the token service,
// which read them through proxy.Layers; none of those is built in here.
func TestDeps(t *testing.T) {
	depcheck.Check(t, ".", depcheck.Rules{
		Own: []string{"daemon/event", "daemon/proxy", "daemon/store", "daemon/dialpolicy", "layer", "layer/watch"},
	})
}
