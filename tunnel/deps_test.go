package tunnel

import (
	"testing"

	"github.com/tower-reg/tower-reg/internal/depcheck"
)

// TestDeps keeps the tunnel below the daemon: the daemon declares the
// interface it consumes and cmd/ builds the tunnel, so nothing here
// imports the daemon's packages (which would run the imports upward).
func TestDeps(t *testing.T) {
	depcheck.Check(t, ".", depcheck.Rules{Own: []string{}})
	depcheck.Check(t, "./tunneltest", depcheck.Rules{Own: []string{"tunnel"}})
}
