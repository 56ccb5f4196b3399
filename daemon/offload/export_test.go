package offload

import "time"

// ExpireChecks makes every uploaded blob's recheck due now, as if Recheck
// had passed since its last one.
func (o *Offload) ExpireChecks() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.states {
		e.checked = time.Time{}
	}
}
