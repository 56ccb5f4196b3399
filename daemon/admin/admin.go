// Package admin is the contract of the local handler's own read-only
// routes: their paths, and the document GET /_towerreg/status answers.
// It is a leaf, beside event, so that the clients of those routes (the
// dashboard, the run file's probe, scripts) read them without building
// the daemon, its upstream client or its tunnel.
package admin

import "time"

// Routes of the daemon's own read-only API.
const (
	StatusPath = "/_towerreg/status"
	EventsPath = "/_towerreg/events"
	// ReloadPath (POST) forces a re-pack of the layer directory: the
	// dashboard's `r` when it is attached over HTTP. Like the other POST
	// routes it takes requests with Content-Type application/json and no
	// Origin only (its body may be empty).
	ReloadPath = "/_towerreg/reload"
)

// Status is what GET /_towerreg/status answers: enough for a script or the
// dashboard to tell what this daemon is and has done.
type Status struct {
	Version         string       `json:"version"`
	Listen          string       `json:"listen"`
	DefaultRegistry string       `json:"defaultRegistry"`
	Started         time.Time    `json:"started"`
	Layer           LayerStatus  `json:"layer"`
	Counts          Counts       `json:"counts"`
	Tunnel          TunnelStatus `json:"tunnel"`
}

// TunnelStatus is the public side: the tunnel's last reported state and
// the plain listeners (--public-listen) that serve the public handler.
type TunnelStatus struct {
	// Provider is "ngrok" or "off".
	Provider string `json:"provider"`
	// State is connecting, up, reconnecting or down; empty while the
	// tunnel has said nothing (always, when off).
	State string `json:"state,omitempty"`
	URL   string `json:"url,omitempty"`
	Error string `json:"error,omitempty"`
	// PublicListen lists the addresses that --public-listen serves.
	PublicListen []string `json:"publicListen,omitempty"`
	// Login is the user name of `docker login` on the public handler, and
	// PasswordFile where its generated password is (empty when the config
	// sets it). Never the password itself.
	Login        string `json:"login,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
}

// LayerStatus is the layer generation being injected.
type LayerStatus struct {
	Generation int      `json:"generation"`
	Source     string   `json:"source"`
	TarDigest  string   `json:"tarDigest"`
	GzipDigest string   `json:"gzipDigest"`
	GzipSize   int64    `json:"gzipSize"`
	Files      int      `json:"files"`
	Platforms  []string `json:"platforms,omitempty"`
	// PlatformDigests maps each overlay to its layer's gzip digest.
	PlatformDigests map[string]string `json:"platformDigests,omitempty"`
}

// Counts are totals since the daemon started.
type Counts struct {
	// Pulls counts manifests served by tag: one per image pulled.
	Pulls     int64 `json:"pulls"`
	Manifests int64 `json:"manifests"`
	Blobs     int64 `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	Errors    int64 `json:"errors"`
	// Tokens counts the container tokens that are live now, whenever they
	// were issued; TokensIssued those issued since the daemon started.
	Tokens       int64 `json:"tokens"`
	TokensIssued int64 `json:"tokensIssued"`
	// Traffic is what the blob answers cost, for the tunnel's plan.
	Traffic Traffic `json:"traffic"`
}

// Traffic is what the blob answers cost since the daemon started: the
// figures of towerreg_served_bytes_total, towerreg_redirects_total and
// towerreg_redirected_bytes_total.
type Traffic struct {
	// PublicBytes are the blob bytes the public face (the tunnel and
	// --public-listen) sent; LocalBytes the local handler's.
	PublicBytes int64 `json:"publicBytes"`
	LocalBytes  int64 `json:"localBytes"`
	// Redirects counts the blob GETs answered with a 307, by where they
	// sent the client.
	Redirects Redirects `json:"redirects"`
	// SavedBytes sums the sizes of the redirected blobs: bytes the daemon
	// did not send. Unsized counts the redirects whose size it never saw
	// (their client had the manifest from elsewhere): SavedBytes misses
	// those.
	SavedBytes int64 `json:"savedBytes"`
	Unsized    int64 `json:"unsizedRedirects"`
}

// Redirects counts redirects by their target.
type Redirects struct {
	Upstream int64 `json:"upstream"` // the upstream's signed URL
	Offload  int64 `json:"offload"`  // the offload store
}
