package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// codeBadRequest is the admin API's code for a request it cannot read.
const codeBadRequest = "BAD_REQUEST"

// maxAdminBody bounds an admin request body: they are small JSON documents.
const maxAdminBody = 1 << 20

// Admin serves the local handler's own routes, beside the registry. They
// are for this machine only: the public handler never routes to them.
type Admin struct {
	tokens    Tokens
	tokenRate *rate.Limiter // nil: no limit
	creds     CredsChecker
	bus       *event.Bus
	status    func() admin.Status
	repack    func(context.Context) error
	log       *slog.Logger
}

// NewAdmin returns the admin routes' handler. status gives the document
// that GET /_towerreg/status answers; repack packs the layer directory
// again for POST /_towerreg/reload; creds checks POST /validate-creds.
func NewAdmin(creds CredsChecker, bus *event.Bus, status func() admin.Status, repack func(context.Context) error, log *slog.Logger, opts ...AdminOption) *Admin {
	a := &Admin{creds: creds, bus: bus, status: status, repack: repack, log: log}
	a.setTokenRate(0)
	for _, o := range opts {
		o(a)
	}
	return a
}

// AdminOption is an optional part of the admin routes' handler.
type AdminOption func(*Admin)

// AdminTokens has POST /container-token issue tokens through t.
func AdminTokens(t Tokens) AdminOption { return func(a *Admin) { a.tokens = t } }

// AdminTokenRate bounds POST /container-token to perMinute requests a
// minute, in bursts of as many; zero means the default, a negative value
// no limit.
func AdminTokenRate(perMinute int) AdminOption { return func(a *Admin) { a.setTokenRate(perMinute) } }

// Register adds the admin routes to mux.
func (a *Admin) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /validate-creds", a.handle(kindValidateCreds, a.validateCreds))
	mux.HandleFunc("POST /container-token", a.handle(kindContainerToken, a.containerToken))
	mux.HandleFunc("GET "+admin.StatusPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.status())
	})
	mux.HandleFunc("GET "+admin.EventsPath, a.events)
	mux.HandleFunc("POST "+admin.ReloadPath, a.handle(kindUnknown, a.reload))
}

// handle is the one place where an admin route's error becomes its
// answer: classified by the rows of the route k (see classifyTable).
func (a *Admin) handle(k kind, route func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := route(w, r); err != nil {
			writeError(w, r, a.log, k, err)
		}
	}
}

// reload is POST /_towerreg/reload.
func (a *Admin) reload(w http.ResponseWriter, r *http.Request) error {
	// A page could otherwise have the daemon re-pack, again and again,
	// with a form post: the body is empty, but the request must still be
	// one that no page can send without asking first.
	if err := checkLocalRequest(r); err != nil {
		return err
	}
	// The outcome is in the answer and, as for any reload, in a
	// LayerReloaded event.
	if err := a.repack(r.Context()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// keepAlive is how often an idle event stream sends a comment, so proxies
// and clients can tell a quiet daemon from a dead connection.
const keepAlive = 15 * time.Second

// events streams the daemon's typed events as Server-Sent Events: the
// event name is the kind (event.Kind), the data its JSON.
func (a *Admin) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sub := a.bus.Subscribe(4096)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": tower-reg events\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	var dropped int64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			// A subscriber that falls behind loses events rather than
			// stalling pulls; it is told how many.
			if d := sub.Dropped(); d != dropped {
				dropped = d
				fmt.Fprintf(w, "event: dropped\ndata: %d\n\n", d)
			} else {
				fmt.Fprint(w, ": keep-alive\n\n")
			}
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			b, err := json.Marshal(e)
			if err != nil {
				a.log.Error("encode event", "kind", event.Kind(e), "error", err)
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event.Kind(e), b)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

type credsRequest struct {
	UserName string `json:"userName"`
	Password string `json:"password"`
	Registry string `json:"registry"`
}

// validateCreds answers true or false: whether the registry takes the
// credentials. A registry that cannot be asked is an error, never false,
// so a caller does not take an outage for a wrong password.
func (a *Admin) validateCreds(w http.ResponseWriter, r *http.Request) error {
	if err := checkLocalRequest(r); err != nil {
		return err
	}
	var req credsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"userName", req.UserName}, {"registry", req.Registry}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return newError(http.StatusBadRequest, codeBadRequest, "missing "+strings.Join(missing, ", "))
	}
	ok, err := a.creds.ValidateCreds(r.Context(), req.Registry, req.UserName, req.Password)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ok)
	return nil
}

// decodeJSON reads a small JSON body strictly: one object, known fields.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return newError(http.StatusUnsupportedMediaType, codeBadRequest, "the body must be application/json, not "+ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, codeBadRequest, fmt.Sprintf("the body is over %d bytes", mbe.Limit))
		}
		return newError(http.StatusBadRequest, codeBadRequest, "the body is not the expected JSON: "+err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(http.StatusBadRequest, codeBadRequest, "the body has more than one JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
