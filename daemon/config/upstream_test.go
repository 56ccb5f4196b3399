package config

import (
	"testing"
	"time"
)

func TestLoadUpstreamAndLimits(t *testing.T) {
	runLoadCases(t, []loadCase{
		{name: "all set", yaml: "upstream:\n  timeout: 5s\n  header_timeout: 2s\n  stall_timeout: 30s\n  max_conns: 4\nlimits:\n  token_requests_per_minute: 10\n",
			want: func(t *testing.T, c Config) {
				u := c.Upstream
				if u.Timeout.Value() != 5*time.Second || u.HeaderTimeout.Value() != 2*time.Second ||
					u.StallTimeout.Value() != 30*time.Second || u.MaxConns != 4 || c.Limits.TokenRequestsPerMinute != 10 {
					t.Fatalf("got %+v %+v", u, c.Limits)
				}
			}},
		{name: "unset means zero", yaml: "listen: 127.0.0.1:1\n", want: func(t *testing.T, c Config) {
			if c.Upstream != (Upstream{}) || c.Limits != (Limits{}) {
				t.Fatalf("got %+v %+v", c.Upstream, c.Limits)
			}
		}},
		{name: "bad timeout names its line", yaml: "listen: 127.0.0.1:1\nupstream:\n  max_conns: 3\n  timeout: forever\n",
			wantErr: `config.yml:4: upstream.timeout: "forever" is not a duration`},
		{name: "negative stall", yaml: "upstream:\n  stall_timeout: -5s\n", wantErr: `config.yml:2: upstream.stall_timeout: "-5s" is negative`},
		{name: "bad header timeout", yaml: "upstream:\n  header_timeout: 3\n", wantErr: `config.yml:2: upstream.header_timeout`},
		{name: "unknown upstream key", yaml: "upstream:\n  timout: 5s\n", wantErr: "timout"},
	})
}
