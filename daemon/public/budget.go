package public

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/tower-reg/tower-reg/daemon/peer"
)

// Wrong logins draw from a budget per client address (peer.Client.Key:
// the forwarded one behind the tunnel), so that one address guessing
// cannot lock everyone else out. Once a client's budget is spent no
// password of its is checked until it refills, so that even a weak
// configured password cannot be guessed online by one address, while a
// developer who mistypes a few times never notices.
const (
	wrongLoginBurst  = 10
	wrongLoginRefill = 6 * time.Second // 10 a minute
	// maxLoginClients bounds the budgets kept. Past it, a client with no
	// budget yet shares the overflow budget, so that many addresses
	// together still guess at a bounded rate; this machine's own
	// addresses always get their own.
	maxLoginClients = 4096
	// sweepEvery spaces the sweeps of a full table, which cost a pass
	// over it, while many addresses keep it full.
	sweepEvery = time.Second
)

// loginBudgets are the budgets of wrong logins. The caller holds the
// handler's wrongMu: the check, the comparison and the spending are one
// step.
type loginBudgets struct {
	byClient  map[string]*rate.Limiter
	overflow  *rate.Limiter
	max       int
	lastSweep time.Time
}

func newLoginBudgets() *loginBudgets {
	return &loginBudgets{byClient: map[string]*rate.Limiter{}, overflow: newLoginBudget(), max: maxLoginClients}
}

func newLoginBudget() *rate.Limiter {
	return rate.NewLimiter(rate.Every(wrongLoginRefill), wrongLoginBurst)
}

// of returns the budget that a login of c draws from.
func (b *loginBudgets) of(c peer.Client, now time.Time) *rate.Limiter {
	key := c.Key()
	if l, ok := b.byClient[key]; ok {
		return l
	}
	if len(b.byClient) >= b.max && now.Sub(b.lastSweep) >= sweepEvery {
		b.sweep(now)
	}
	if len(b.byClient) >= b.max && !c.Local() {
		return b.overflow
	}
	l := newLoginBudget()
	b.byClient[key] = l
	return l
}

// sweep drops the budgets that have refilled: a full one is a new one,
// so nothing is forgotten.
func (b *loginBudgets) sweep(now time.Time) {
	b.lastSweep = now
	for k, l := range b.byClient {
		if l.TokensAt(now) >= wrongLoginBurst {
			delete(b.byClient, k)
		}
	}
}
