package config

// Upstream bounds the daemon's requests to upstream registries. Zero
// values take the proxy's defaults (proxy.Default*).
type Upstream struct {
	// Timeout bounds one upstream operation, retries included: a manifest,
	// config or tags request whole, and the wait for a blob's headers. A
	// registry that does not answer in time is a 504 for the client.
	Timeout Duration `yaml:"timeout"`
	// HeaderTimeout bounds one attempt's wait for response headers.
	HeaderTimeout Duration `yaml:"header_timeout"`
	// StallTimeout cuts a blob transfer that moved nothing for that long:
	// an upstream that sends nothing, or a client that takes nothing.
	StallTimeout Duration `yaml:"stall_timeout"`
	// MaxConns bounds the connections to one registry host; requests over
	// it wait for a connection, within Timeout.
	MaxConns int `yaml:"max_conns"`
}

// Limits bounds what clients may ask of the daemon.
type Limits struct {
	// TokenRequestsPerMinute bounds POST /container-token: each one may
	// fetch gigabytes of layers. Zero means the daemon's default, a
	// negative value no limit.
	TokenRequestsPerMinute int `yaml:"token_requests_per_minute"`
	// PublicConnsPerClient bounds what one client address holds at once
	// on the public handler: connections on --public-listen, requests in
	// flight through the tunnel. Zero means the daemon's default, a
	// negative value no limit.
	PublicConnsPerClient int `yaml:"public_conns_per_client"`
}
