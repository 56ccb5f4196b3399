package daemon

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/peer"
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

// counters tally the event stream for Status. They observe the bus, so
// they miss no event, and keep the handlers free of bookkeeping.
type counters struct {
	pulls, manifests, blobs, bytes, errors, issued atomic.Int64
	// The blob answers' costs: see Traffic.
	publicBytes, localBytes, toUpstream, toOffload, saved, unsized atomic.Int64
}

func (c *counters) add(e event.Event) {
	switch e := e.(type) {
	case event.ManifestServed:
		if e.Status >= 400 || e.Err != "" {
			c.errors.Add(1)
			return
		}
		c.manifests.Add(1)
		if e.Method == "GET" && e.Reference != e.Digest {
			c.pulls.Add(1)
		}
	case event.BlobServed:
		c.account(e)
		if e.Status >= 400 || e.Err != "" {
			c.errors.Add(1)
			return
		}
		c.blobs.Add(1)
		c.bytes.Add(e.Bytes)
	case event.TokenIssued:
		c.issued.Add(1)
	}
}

// account counts what a blob answer cost, as metrics.account does.
func (c *counters) account(e event.BlobServed) {
	if blobFace(e) == peer.FacePublic {
		c.publicBytes.Add(e.Bytes)
	} else {
		c.localBytes.Add(e.Bytes)
	}
	src, ok := redirectSource(e)
	if !ok {
		return
	}
	if src == redirectOffload {
		c.toOffload.Add(1)
	} else {
		c.toUpstream.Add(1)
	}
	if e.Size > 0 {
		c.saved.Add(e.Size)
	} else {
		c.unsized.Add(1)
	}
}

func (c *counters) snapshot() Counts {
	return Counts{
		Pulls: c.pulls.Load(), Manifests: c.manifests.Load(), Blobs: c.blobs.Load(),
		Bytes: c.bytes.Load(), Errors: c.errors.Load(), TokensIssued: c.issued.Load(),
		Traffic: Traffic{
			PublicBytes: c.publicBytes.Load(), LocalBytes: c.localBytes.Load(),
			Redirects:  Redirects{Upstream: c.toUpstream.Load(), Offload: c.toOffload.Load()},
			SavedBytes: c.saved.Load(), Unsized: c.unsized.Load(),
		},
	}
}

// Status returns what the daemon is and has done, as GET /_towerreg/status
// answers it.
func (d *Daemon) Status() Status {
	g := d.Generation()
	platforms := make([]string, 0, len(g.Set.Platforms))
	digests := make(map[string]string, len(g.Set.Platforms))
	for p, b := range g.Set.Platforms {
		platforms = append(platforms, p)
		digests[p] = b.GzipDigest.String()
	}
	sort.Strings(platforms)
	listen, _ := d.addr.Load().(string)
	counts := d.counts.snapshot()
	counts.Tokens = int64(d.tokens.store.Live())
	return Status{
		Version:         Version,
		Listen:          listen,
		DefaultRegistry: d.cfg.DefaultRegistry,
		Started:         d.started,
		Layer: LayerStatus{
			Generation: g.Number, Source: d.layerSource,
			TarDigest: g.Set.Common.TarDigest.String(), GzipDigest: g.Set.Common.GzipDigest.String(),
			GzipSize: g.Set.Common.GzipSize, Files: g.Set.Common.Files, Platforms: platforms, PlatformDigests: digests,
		},
		Counts: counts,
		Tunnel: d.tunnelSection(),
	}
}

func (d *Daemon) tunnelSection() TunnelStatus {
	d.tun.mu.Lock()
	defer d.tun.mu.Unlock()
	s := d.tun.last
	return TunnelStatus{Provider: d.tunnel.Provider(), State: s.State, URL: s.URL, Error: s.Err, PublicListen: d.publicAddrs,
		Login: d.publicUser, PasswordFile: d.publicFile}
}
