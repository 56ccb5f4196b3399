package state

import (
	"net"
	"strings"
	"time"
)

// Pull is one image pulled by one client: its manifest requests and the
// blob requests that followed them.
type Pull struct {
	ID        int
	Start     time.Time
	Last      time.Time
	Client    string // host, without the port: a client opens several connections
	Repo      string // upstream repository, e.g. index.docker.io/library/busybox
	Reference string // tag or digest as first asked
	Platforms []string
	// Upstream is the digest of the upstream manifest or index; Digest the
	// rewritten one the client got.
	Upstream  string
	Digest    string
	MediaType string
	Cached    bool
	Token     string
	// Configs are the configs the pull's image manifests name; Injected
	// are the appended layers served (blobs of a known layer generation).
	Configs  []string
	Injected []string
	// Redirected are the blobs a redirect sent elsewhere (the upstream's
	// storage, the offload store): none of their bytes crossed the daemon.
	Redirected []string
	Requests   []Request

	BlobsStarted, BlobsDone int
	// BytesDone counts the bytes of finished blobs; BytesTotal the sizes
	// of every blob started, where known, to draw progress.
	BytesDone, BytesTotal int64
	inflight              map[string]int64

	Err       string
	ErrStatus int
}

// Request is one HTTP request of a pull.
type Request struct {
	Time      time.Time
	Kind      string // "manifest" or "blob"
	Method    string
	Ref       string // the reference or digest asked for
	Digest    string // a manifest's rewritten digest
	Upstream  string // a manifest's upstream digest
	MediaType string
	Source    string // a blob's: "store", "upstream", "redirect" or "offload"
	Cached    bool
	Status    int
	Bytes     int64
	Duration  time.Duration
	Err       string
}

// Pull states, as the Status column shows them.
const (
	StatePulling = "pulling"
	StateOK      = "ok"
	StateCached  = "cached"
	StateError   = "error"
)

// State is the pull's status: an error wins, then blobs in flight.
func (p *Pull) State() string {
	switch {
	case p.Err != "":
		return StateError
	case len(p.inflight) > 0:
		return StatePulling
	case p.Cached:
		return StateCached
	}
	return StateOK
}

// InFlight reports blobs started and not yet finished.
func (p *Pull) InFlight() int { return len(p.inflight) }

// Progress is the share of the started blobs' bytes that are done, from
// 0 to 1; blobs of unknown size count as done when they finish.
func (p *Pull) Progress() float64 {
	if p.BytesTotal <= 0 {
		if p.BlobsStarted == 0 {
			return 0
		}
		return float64(p.BlobsDone) / float64(p.BlobsStarted)
	}
	f := float64(p.BytesDone) / float64(p.BytesTotal)
	return min(f, 1)
}

// Duration is the time from the first request to the end of the last.
func (p *Pull) Duration() time.Duration { return p.Last.Sub(p.Start) }

// Image is the repository with the reference: repo:tag or repo@digest.
func (p *Pull) Image() string {
	if strings.HasPrefix(p.Reference, "sha256:") {
		return p.Repo + "@" + p.Reference
	}
	return p.Repo + ":" + p.Reference
}

// Match reports whether the pull has q (lowercase) in any of the fields
// a user would filter on.
func (p *Pull) Match(q string) bool {
	return matchAny(q, p.Image(), p.Client, p.Upstream, p.Digest, p.State(), p.Token, p.Err,
		strings.Join(p.Platforms, " "))
}

func matchAny(q string, fields ...string) bool {
	if q == "" {
		return true
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// isTag reports whether a reference names a tag: a pull starts there,
// where a digest follows from an index or a tag already fetched. The
// sha256-<hex> tag form is a tag.
func isTag(ref string) bool { return ref != "" && !strings.HasPrefix(ref, "sha256:") }

// hostOf strips the port from a remote address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
