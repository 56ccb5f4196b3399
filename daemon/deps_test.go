package daemon

import (
	"testing"

	"github.com/tower-reg/tower-reg/internal/depcheck"
)

// TestDeps: the daemon declares the tunnel it consumes and cmd/ builds
// it, so the daemon builds without the tunnel's package and its SDK.
func TestDeps(t *testing.T) {
	depcheck.Check(t, ".", depcheck.Rules{Forbidden: []string{depcheck.Module + "tunnel", "golang.ngrok.com/"}})
}
