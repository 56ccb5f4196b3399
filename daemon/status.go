package daemon

import (
	"sort"
	"sync/atomic"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/peer"
)

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

func (c *counters) snapshot() admin.Counts {
	return admin.Counts{
		Pulls: c.pulls.Load(), Manifests: c.manifests.Load(), Blobs: c.blobs.Load(),
		Bytes: c.bytes.Load(), Errors: c.errors.Load(), TokensIssued: c.issued.Load(),
		Traffic: admin.Traffic{
			PublicBytes: c.publicBytes.Load(), LocalBytes: c.localBytes.Load(),
			Redirects:  admin.Redirects{Upstream: c.toUpstream.Load(), Offload: c.toOffload.Load()},
			SavedBytes: c.saved.Load(), Unsized: c.unsized.Load(),
		},
	}
}

// Status returns what the daemon is and has done, as GET /_towerreg/status
// answers it.
func (d *Daemon) Status() admin.Status {
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
	counts.Tokens = int64(d.tokenStore.Live())
	return admin.Status{
		Version:         Version,
		Listen:          listen,
		DefaultRegistry: d.cfg.DefaultRegistry,
		Started:         d.started,
		Layer: admin.LayerStatus{
			Generation: g.Number, Source: d.layerSource,
			TarDigest: g.Set.Common.TarDigest.String(), GzipDigest: g.Set.Common.GzipDigest.String(),
			GzipSize: g.Set.Common.GzipSize, Files: g.Set.Common.Files, Platforms: platforms, PlatformDigests: digests,
		},
		Counts: counts,
		Tunnel: d.tunnelSection(),
	}
}

func (d *Daemon) tunnelSection() admin.TunnelStatus {
	d.tun.mu.Lock()
	defer d.tun.mu.Unlock()
	s := d.tun.last
	return admin.TunnelStatus{Provider: d.tunnelProvider(), State: s.State, URL: s.URL, Error: s.Err, PublicListen: d.publicAddrs,
		Login: d.publicUser, PasswordFile: d.publicFile}
}
