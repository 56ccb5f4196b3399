package api

import (
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/event"
	"github.com/tower-reg/tower-reg/daemon/peer"
	"github.com/tower-reg/tower-reg/daemon/proxy"
	"github.com/tower-reg/tower-reg/daemon/token"
)

// blob answers a blob request; allow refuses digests the route may not
// serve (a container token's route serves its image's blobs only), and tok
// is the short form of that token, if any.
func (h *Registry) blob(x *exchange, tok string, allow func(v1.Hash) error) error {
	r, rt := x.r, x.rt
	start := time.Now()
	unstall := func() {}
	if h.stall > 0 {
		st := stallWriter{ResponseWriter: x.w.ResponseWriter, rc: http.NewResponseController(x.w.ResponseWriter), stall: h.stall}
		// The server sets no write deadline of its own: leave none behind
		// for the next request on this connection, once the answer, an
		// error's included, is out.
		unstall = func() { st.rc.SetWriteDeadline(time.Time{}) }
		x.w.ResponseWriter = st
	}
	red := token.PathRedactor(r.URL.Path)
	ev := event.BlobServed{Client: r.RemoteAddr, Method: r.Method, Repo: red.Replace(rt.name), Digest: red.Replace(rt.ref), Token: tok,
		Face: peer.Face(r), Size: -1}
	x.done = func(_ int, err error) {
		if err != nil {
			ev.Err = red.Replace(err.Error())
		}
		// The status the client saw: none when it went away first.
		ev.Status, ev.Bytes = x.w.status, x.w.bytes
		ev.Time, ev.Duration = h.bus.Now(), since(start)
		h.bus.Publish(ev)
		unstall()
	}
	return h.serveBlob(x.w, r, rt, allow, red, &ev)
}

func (h *Registry) serveBlob(w *statusWriter, r *http.Request, rt route, allow func(v1.Hash) error, red *strings.Replacer, ev *event.BlobServed) error {
	repo, err := rt.repo(h.defaultRegistry)
	if err != nil {
		return err
	}
	// A name that resolved may still carry a token, as a path component.
	ev.Repo = red.Replace(repo.String())
	d, err := proxy.ParseDigest(rt.ref)
	if err != nil {
		return err
	}
	if err := allow(d); err != nil {
		return err
	}
	a, err := h.blobs.Open(r.Context(), repo, d, r.Method, r.Header.Get("Range"))
	if err != nil {
		ev.Source = proxy.SourceUpstream
		return err
	}
	defer a.Close()
	ev.Source, ev.Note, ev.Size = a.Source, red.Replace(a.Note), a.Size
	if n, ok := h.sizes.size(d.String()); ok && ev.Size < 0 {
		ev.Size = n
	}
	if r.Method == http.MethodGet {
		h.bus.Publish(event.BlobStarted{Meta: event.Meta{Time: h.bus.Now()}, Client: r.RemoteAddr,
			Repo: ev.Repo, Digest: d.String(), Source: ev.Source, Size: a.Size, Token: ev.Token})
	}
	return a.Serve(w, r)
}

// stallWriter cuts a client that stops reading a blob: each write must be
// taken within stall. Without it, a client that connects and never reads
// would hold a goroutine, its chunks and an upstream connection for as
// long as it stays connected.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (s stallWriter) Write(p []byte) (int, error) {
	// A writer that cannot take deadlines (a test's recorder) just writes.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
