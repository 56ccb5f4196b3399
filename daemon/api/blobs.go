package api

import (
	"io"
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

// stallPiece is how much of a blob ReadFrom hands the connection under one
// deadline: a client must take that much within the stall bound, as it
// must take each chunk Write is given.
const stallPiece = 512 << 10

// ReadFrom keeps the connection's own ReadFrom, which sends a file of the
// store with sendfile, and sets the deadline before each piece of it as
// Write does before each write.
func (s stallWriter) ReadFrom(src io.Reader) (int64, error) {
	// A file under one io.LimitedReader is what sendfile takes: the pieces
	// are cut from that one, not wrapped around it.
	lr, limited := src.(*io.LimitedReader)
	var total int64
	for {
		piece := &io.LimitedReader{R: src, N: stallPiece}
		if limited {
			piece = &io.LimitedReader{R: lr.R, N: min(stallPiece, lr.N)}
		}
		want := piece.N
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
		n, err := io.Copy(s.ResponseWriter, piece)
		total += n
		if limited {
			lr.N -= n
		}
		if err != nil || n < want || (limited && lr.N <= 0) {
			return total, err
		}
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
