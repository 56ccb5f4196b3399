package event

import (
	"time"
)

// Event is one thing that happened in the daemon. The set is closed: only
// this package's types implement it, so a type switch over them is complete.
type Event interface {
	// When is the time the event was published.
	When() time.Time
	event()
}

// Meta holds the fields every event has.
type Meta struct {
	Time time.Time `json:"time"`
}

// When implements Event.
func (m Meta) When() time.Time { return m.Time }
func (Meta) event()            {}

// ManifestServed is a manifest request answered, or refused: the start of
// every pull.
type ManifestServed struct {
	Meta
	Client    string `json:"client"`
	Method    string `json:"method"`
	Repo      string `json:"repo"`      // upstream repository, e.g. index.docker.io/library/busybox
	Reference string `json:"reference"` // tag or digest as asked
	// Upstream is the upstream digest the answer was made from; Digest is
	// what the client received. They differ when a layer was appended.
	Upstream  string `json:"upstream,omitempty"`
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	// Config is the config digest of an image manifest, as served.
	Config    string        `json:"config,omitempty"`
	Platforms []string      `json:"platforms,omitempty"`
	Cached    bool          `json:"cached"`
	Status    int           `json:"status"`
	Duration  time.Duration `json:"duration"`
	Err       string        `json:"error,omitempty"`
	// Token is the shortened container token of a pull through one.
	Token string `json:"token,omitempty"`
}

// BlobServed is a blob request answered: a base layer streamed from
// upstream, or the injected layer or a rewritten config from the store.
type BlobServed struct {
	Meta
	Client string `json:"client"`
	Method string `json:"method"`
	Repo   string `json:"repo"`
	Digest string `json:"digest"`
	Source string `json:"source"` // "store", "upstream", "redirect" or "offload"
	// Face is the handler the request came through: "local" or
	// "public" (the tunnel and --public-listen), whose bytes the
	// tunnel's plan counts. Empty in events from before it was added.
	Face string `json:"face,omitempty"`
	// Note says why a blob was streamed although its audience redirects.
	Note string `json:"note,omitempty"`
	// Bytes is what the daemon sent of the body; Size the answer's
	// length (a range's, for a Range request), -1 when unknown. A
	// redirect sends none of the blob: its Size is the blob's, from the
	// manifest the daemon served the client, when it served one.
	Bytes    int64         `json:"bytes"`
	Size     int64         `json:"size"`
	Status   int           `json:"status"`
	Duration time.Duration `json:"duration"`
	Err      string        `json:"error,omitempty"`
	Token    string        `json:"token,omitempty"`
}

// LayerPacked is a layer generation built from the layer directory.
type LayerPacked struct {
	Meta
	Generation int           `json:"generation"`
	Source     string        `json:"source"`
	TarDigest  string        `json:"tarDigest"`
	GzipDigest string        `json:"gzipDigest"`
	GzipSize   int64         `json:"gzipSize"`
	Platforms  []string      `json:"platforms,omitempty"`
	Files      int           `json:"files"`
	Duration   time.Duration `json:"duration"`
	Err        string        `json:"error,omitempty"`
}

// LayerReloaded is the outcome of a change in the layer directory: a new
// generation, a re-pack that gave the same layers, or an error that left the
// previous generation serving.
type LayerReloaded struct {
	Meta
	Source string `json:"source"`
	// Trigger is the file whose change started the reload, relative to
	// the layer directory; empty for a rescan.
	Trigger string `json:"trigger,omitempty"`
	// Generation is the generation serving after the reload.
	Generation int `json:"generation"`
	// Changed reports that a new generation started.
	Changed bool `json:"changed"`
	// OldDigest and NewDigest are the common layer's gzip digests before
	// and after (NewDigest is empty on error).
	OldDigest string `json:"oldDigest"`
	NewDigest string `json:"newDigest,omitempty"`
	// Platforms maps each overlay to its new gzip digest.
	Platforms map[string]string `json:"platforms,omitempty"`
	Files     int               `json:"files"`
	// Bytes is the compressed size of all the layers of the set.
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration"`
	Err      string        `json:"error,omitempty"`
}

// BlobStarted is a blob transfer whose headers are out: with BlobServed at
// its end, it lets a viewer draw progress. Size is the whole blob's (or the
// range's) length, -1 when unknown.
type BlobStarted struct {
	Meta
	Client string `json:"client"`
	Repo   string `json:"repo"`
	Digest string `json:"digest"`
	Source string `json:"source"`
	Size   int64  `json:"size"`
	Token  string `json:"token,omitempty"`
}

// TokenIssued is a container token handed out. Token is shortened: the
// whole token is a credential and never leaves the token store.
type TokenIssued struct {
	Meta
	Token       string    `json:"token"`
	Image       string    `json:"image"`
	TargetImage string    `json:"targetImage"`
	Expires     time.Time `json:"expires"`
	Layers      int       `json:"layers"`
	// Generation is the pinned layer generation of a token without a
	// containerConfig, 0 otherwise.
	Generation int `json:"generation,omitempty"`
}

// TokenExpired is a container token purged after its expiry.
type TokenExpired struct {
	Meta
	Token   string    `json:"token"`
	Image   string    `json:"image"`
	Expired time.Time `json:"expired"`
}

// Tunnel states.
const (
	TunnelConnecting   = "connecting"
	TunnelUp           = "up"
	TunnelReconnecting = "reconnecting"
	TunnelDown         = "down"
)

// TunnelStatus is the public tunnel changing state.
type TunnelStatus struct {
	Meta
	Provider string `json:"provider"` // "ngrok", or "listen" for --public-listen
	State    string `json:"state"`
	// URL is the public URL while up.
	URL string `json:"url,omitempty"`
	// Err says why the tunnel is down or reconnecting, in plain words.
	Err string `json:"error,omitempty"`
}

// Offload states.
const (
	OffloadUploaded = "uploaded"
	OffloadFailed   = "failed"
)

// OffloadStatus is a blob reaching the offload store, or the store
// failing in a way not reported before (it is down, it refuses the
// credentials). Until a blob is uploaded, public clients get it from the
// daemon: a failure costs bandwidth, never a pull.
type OffloadStatus struct {
	Meta
	State  string `json:"state"`
	Digest string `json:"digest"`
	Bytes  int64  `json:"bytes,omitempty"`
	// Kind names the failure ("unreachable", "AccessDenied"); each kind
	// is reported once until an upload succeeds again.
	Kind string `json:"kind,omitempty"`
	Err  string `json:"error,omitempty"`
}
