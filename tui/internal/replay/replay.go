// Package replay is a scripted event stream for the dashboard's tests,
// goldens and benchmark: pulls (done, through a token with redirects, in
// flight, failed, cached), a reload, tokens, and a tunnel going up then down. Everything
// is fixed, so what a test renders from it is too.
package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// T0 is the time of the first event.
var T0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// Now is the time the dashboard is looked at, after the last event.
var Now = T0.Add(2*time.Minute + 5*time.Second)

// Digest is a fixed sha256 digest named after s.
func Digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Status is the daemon's status answer to go with Events.
func Status() admin.Status {
	return admin.Status{
		Version: "v0.6.0", Listen: "127.0.0.1:9090", DefaultRegistry: "docker.io", Started: T0.Add(-time.Second),
		Layer: admin.LayerStatus{Generation: 2, Source: "/home/dev/layer", TarDigest: Digest("tar-2"),
			GzipDigest: Digest("gz-2"), GzipSize: 4321, Files: 3, Platforms: []string{"linux_amd64", "linux_arm64"}},
		Counts: admin.Counts{Pulls: 4, Manifests: 9, Blobs: 8, Bytes: 3<<20 + 1234, Errors: 1,
			Traffic: admin.Traffic{PublicBytes: 1200, LocalBytes: 4<<20 + 6500,
				Redirects: admin.Redirects{Upstream: 1, Offload: 1}, SavedBytes: 1<<20 + 4100}},
	}
}

// at is T0 plus seconds.
func at(sec float64) event.Meta {
	return event.Meta{Time: T0.Add(time.Duration(sec * float64(time.Second)))}
}

const (
	busybox = "index.docker.io/library/busybox"
	bash    = "quay.io/nextflow/bash"
	multi   = "127.0.0.1:5000/test/multi"
	local   = "127.0.0.1:41000"
	remote  = "192.0.2.10:51000"
)

// Token is the shortened container token of the replayed pull through one.
const Token = "tk_3f9a2c"

// Events is the scripted stream.
func Events() []event.Event {
	ms := time.Millisecond
	return []event.Event{
		event.LayerPacked{Meta: at(0), Generation: 1, Source: "/home/dev/layer", TarDigest: Digest("tar-1"),
			GzipDigest: Digest("gz-1"), GzipSize: 4100, Platforms: []string{"linux_amd64", "linux_arm64"}, Files: 3, Duration: 12 * ms},
		event.TunnelStatus{Meta: at(1), Provider: "ngrok", State: event.TunnelConnecting},
		event.TunnelStatus{Meta: at(2), Provider: "ngrok", State: event.TunnelUp, URL: "https://reg.ngrok.app"},

		// A pull of an index: HEAD and GET by tag, one platform, its blobs.
		event.ManifestServed{Meta: at(10), Client: local, Method: "HEAD", Repo: busybox, Reference: "latest",
			Upstream: Digest("bb-index"), Digest: Digest("bb-index-rw"), MediaType: "application/vnd.oci.image.index.v1+json",
			Platforms: []string{"linux/amd64", "linux/arm64"}, Status: 200, Duration: 310 * ms},
		event.ManifestServed{Meta: at(10.4), Client: "127.0.0.1:41001", Method: "GET", Repo: busybox, Reference: "latest",
			Upstream: Digest("bb-index"), Digest: Digest("bb-index-rw"), MediaType: "application/vnd.oci.image.index.v1+json",
			Platforms: []string{"linux/amd64", "linux/arm64"}, Cached: true, Status: 200, Duration: 2 * ms},
		event.ManifestServed{Meta: at(10.5), Client: local, Method: "GET", Repo: busybox, Reference: Digest("bb-amd64-rw"),
			Upstream: Digest("bb-amd64"), Digest: Digest("bb-amd64-rw"), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Config: Digest("bb-config-rw"), Platforms: []string{"linux/amd64"}, Cached: true, Status: 200, Duration: 1 * ms},
		event.BlobStarted{Meta: at(10.6), Client: local, Repo: busybox, Digest: Digest("bb-config-rw"), Source: "store", Size: 1500},
		event.BlobServed{Meta: at(10.61), Client: local, Method: "GET", Repo: busybox, Digest: Digest("bb-config-rw"), Source: "store",
			Bytes: 1500, Status: 200, Duration: 10 * ms},
		event.BlobStarted{Meta: at(10.7), Client: local, Repo: busybox, Digest: Digest("bb-base"), Source: "upstream", Size: 2 << 20},
		event.BlobStarted{Meta: at(10.7), Client: "127.0.0.1:41002", Repo: busybox, Digest: Digest("gz-1"), Source: "store", Size: 4100},
		event.BlobServed{Meta: at(10.75), Client: "127.0.0.1:41002", Method: "GET", Repo: busybox, Digest: Digest("gz-1"), Source: "store",
			Bytes: 4100, Status: 200, Duration: 50 * ms},
		event.BlobServed{Meta: at(11.9), Client: local, Method: "GET", Repo: busybox, Digest: Digest("bb-base"), Source: "upstream",
			Bytes: 2 << 20, Status: 200, Duration: 1200 * ms},

		// A container token, and a pull through it from another host.
		event.TokenIssued{Meta: at(20), Token: Token, Image: bash + ":latest",
			TargetImage: "reg.ngrok.app/wt/" + Token + "/" + bash + ":latest", Expires: T0.Add(time.Hour), Layers: 1},
		event.TokenIssued{Meta: at(21), Token: "tk_77e1b0", Image: "docker.io/library/alpine:3.20",
			TargetImage: "reg.ngrok.app/wt/tk_77e1b0/library/alpine:3.20", Expires: T0.Add(90 * time.Second)},
		event.ManifestServed{Meta: at(30), Client: remote, Method: "GET", Repo: bash, Reference: "latest",
			Upstream: Digest("bash"), Digest: Digest("bash-rw"), MediaType: "application/vnd.docker.distribution.manifest.v2+json",
			Config: Digest("bash-config-rw"), Platforms: []string{"linux/amd64"}, Status: 200, Duration: 420 * ms, Token: Token},
		// Through the tunnel: the config from the daemon, the base layer
		// redirected to the upstream's storage, the injected layer to the
		// offload store.
		event.BlobStarted{Meta: at(30.45), Client: remote, Repo: bash, Digest: Digest("bash-config-rw"), Source: "store", Size: 1200, Token: Token},
		event.BlobServed{Meta: at(30.46), Client: remote, Method: "GET", Repo: bash, Digest: Digest("bash-config-rw"), Source: "store",
			Face: "public", Bytes: 1200, Size: 1200, Status: 200, Duration: 10 * ms, Token: Token},
		event.BlobStarted{Meta: at(30.5), Client: remote, Repo: bash, Digest: Digest("bash-base"), Source: "redirect", Size: -1, Token: Token},
		event.BlobServed{Meta: at(30.6), Client: remote, Method: "GET", Repo: bash, Digest: Digest("bash-base"), Source: "redirect",
			Face: "public", Size: 1 << 20, Status: 307, Duration: 100 * ms, Token: Token},
		event.BlobStarted{Meta: at(30.7), Client: remote, Repo: bash, Digest: Digest("gz-1"), Source: "offload", Size: -1, Token: Token},
		event.BlobServed{Meta: at(30.71), Client: remote, Method: "GET", Repo: bash, Digest: Digest("gz-1"), Source: "offload",
			Face: "public", Size: 4100, Status: 307, Duration: 10 * ms, Token: Token},

		// An edit of the layer directory: generation 2.
		event.LayerReloaded{Meta: at(40), Source: "/home/dev/layer", Trigger: "etc/fusion.conf", Generation: 2, Changed: true,
			OldDigest: Digest("gz-1"), NewDigest: Digest("gz-2"),
			Platforms: map[string]string{"linux_amd64": Digest("gz-2-amd64"), "linux_arm64": Digest("gz-2-arm64")},
			Files:     3, Bytes: 12000, Duration: 165 * ms},

		// A pull still streaming: 1 of 3 blobs done.
		event.ManifestServed{Meta: at(50), Client: local, Method: "GET", Repo: multi, Reference: "v1",
			Upstream: Digest("multi"), Digest: Digest("multi-rw"), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Config: Digest("multi-config-rw"), Platforms: []string{"linux/arm64"}, Status: 200, Duration: 40 * ms},
		event.BlobStarted{Meta: at(50.1), Client: local, Repo: multi, Digest: Digest("multi-config-rw"), Source: "store", Size: 900},
		event.BlobServed{Meta: at(50.11), Client: local, Method: "GET", Repo: multi, Digest: Digest("multi-config-rw"), Source: "store",
			Bytes: 900, Status: 200, Duration: 10 * ms},
		event.BlobStarted{Meta: at(50.2), Client: local, Repo: multi, Digest: Digest("multi-base"), Source: "upstream", Size: 8 << 20},
		event.BlobStarted{Meta: at(50.2), Client: local, Repo: multi, Digest: Digest("gz-2-arm64"), Source: "store", Size: 5000},

		// A pull that failed.
		event.ManifestServed{Meta: at(60), Client: local, Method: "GET", Repo: "index.docker.io/library/nope", Reference: "latest",
			Status: 404, Duration: 90 * ms, Err: "MANIFEST_UNKNOWN: manifest unknown: index.docker.io/library/nope:latest"},

		// A pull answered from the cache.
		event.ManifestServed{Meta: at(70), Client: local, Method: "GET", Repo: busybox, Reference: "1.36",
			Upstream: Digest("bb136"), Digest: Digest("bb136-rw"), MediaType: "application/vnd.docker.distribution.manifest.v2+json",
			Config: Digest("bb136-config-rw"), Platforms: []string{"linux/amd64"}, Cached: true, Status: 200, Duration: 1 * ms},
		// Its base layer was kept by the pull above: from the store too.
		event.BlobStarted{Meta: at(70.007), Client: local, Repo: busybox, Digest: Digest("bb-base"), Source: "store", Size: 2 << 20},
		event.BlobServed{Meta: at(70.01), Client: local, Method: "GET", Repo: busybox, Digest: Digest("bb-base"), Source: "store",
			Bytes: 2 << 20, Status: 200, Duration: 3 * ms},

		// The tunnel drops, and gives up.
		event.TunnelStatus{Meta: at(100), Provider: "ngrok", State: event.TunnelReconnecting, Err: "connection reset by peer"},
		event.TunnelStatus{Meta: at(110), Provider: "ngrok", State: event.TunnelDown, Err: "authentication failed: the authtoken was revoked"},
		event.TokenExpired{Meta: at(115), Token: "tk_77e1b0", Image: "docker.io/library/alpine:3.20", Expired: T0.Add(90 * time.Second)},
	}
}

// Many returns n events: the script over and over, each copy on its own
// clients and a second later, for load tests.
func Many(n int) []event.Event {
	base := Events()
	out := make([]event.Event, 0, n)
	for i := 0; len(out) < n; i++ {
		for _, e := range base {
			if len(out) == n {
				break
			}
			out = append(out, shift(e, i))
		}
	}
	return out
}

func shift(e event.Event, i int) event.Event {
	d := time.Duration(i) * 200 * time.Second
	client := func(c string) string { return fmt.Sprintf("%s-%d", c, i) }
	switch e := e.(type) {
	case event.ManifestServed:
		e.Time, e.Client = e.Time.Add(d), client(e.Client)
		return e
	case event.BlobStarted:
		e.Time, e.Client = e.Time.Add(d), client(e.Client)
		return e
	case event.BlobServed:
		e.Time, e.Client = e.Time.Add(d), client(e.Client)
		return e
	case event.LayerPacked:
		e.Time = e.Time.Add(d)
		return e
	case event.LayerReloaded:
		e.Time, e.Generation = e.Time.Add(d), e.Generation+i
		return e
	case event.TokenIssued:
		e.Time, e.Token = e.Time.Add(d), fmt.Sprintf("%s%d", e.Token, i)
		return e
	case event.TokenExpired:
		e.Time, e.Token = e.Time.Add(d), fmt.Sprintf("%s%d", e.Token, i)
		return e
	case event.TunnelStatus:
		e.Time = e.Time.Add(d)
		return e
	}
	return e
}
