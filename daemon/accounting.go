package daemon

import (
	"net/http"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/peer"
	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// The accounting of blob answers: what each face sent, and what the
// redirects kept off the developer's uplink. The tunnel's plan counts
// bytes and requests, so these are what a user checks against it. The
// label values are these constants only, whatever an event carries, so
// that the series stay few.
const (
	modeStream   = "stream"   // the daemon sent the bytes: from the store or the upstream
	modeRedirect = "redirect" // a 307 sent the client elsewhere

	redirectUpstream = "upstream" // to the upstream's signed URL
	redirectOffload  = "offload"  // to the offload store
)

// blobFace is the face of e, as a label: anything but public is local
// (events from before the field was added say nothing).
func blobFace(e event.BlobServed) string {
	if e.Face == peer.FacePublic {
		return peer.FacePublic
	}
	return peer.FaceLocal
}

// blobMode is how e's answer reached its client.
func blobMode(e event.BlobServed) string {
	if _, ok := redirectSource(e); ok {
		return modeRedirect
	}
	return modeStream
}

// redirectSource is where a redirect sent the client; false for an answer
// that was no redirect, or a failed one.
func redirectSource(e event.BlobServed) (string, bool) {
	if e.Err != "" || e.Status != http.StatusTemporaryRedirect {
		return "", false
	}
	switch e.Source {
	case proxy.SourceRedirect:
		return redirectUpstream, true
	case proxy.SourceOffload:
		return redirectOffload, true
	}
	return "", false
}
