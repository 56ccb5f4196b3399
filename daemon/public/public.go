// Package public is the handler that other machines reach: through the
// tunnel, or --public-listen. It serves the registry routes only, behind
// the registry token flow that `docker login` and every registry client
// speak, so that the developer's registry credentials serve only clients
// that proved they may use them.
package public

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tower-reg/tower-reg/daemon/errcode"
	"github.com/tower-reg/tower-reg/daemon/peer"
)

// TokenPath is where the challenge sends clients for a token.
const TokenPath = "/auth/token"

// service is the token service's name in challenges and token requests.
const service = "tower-reg"

// sessionTTL is how long a token from TokenPath is good for. Clients ask
// again when it runs out, so it only bounds how long a token that leaked
// stays useful.
const sessionTTL = time.Hour

// anonymousToken is the token of clients that did not log in. It grants
// what no token at all would, so it needs no secrecy, and it keeps no state:
// anyone may ask for it any number of times.
const anonymousToken = "anonymous"

// Credential is the login the public handler takes.
type Credential struct {
	Username string
	Password string
}

// Options builds a Handler.
type Options struct {
	// Full serves the container token routes (TokenRoute), which
	// authorize by the token in their path: the registry of the token
	// audience, with the developer's credentials and the public blob mode.
	Full http.Handler
	// LoggedIn serves clients that logged in: the registry with the
	// developer's upstream credentials; nil means Full.
	LoggedIn http.Handler
	// Anonymous serves everyone else: the registry with anonymous upstream
	// access and a store scope of its own.
	Anonymous http.Handler
	// AnonymousAccess returns nil for a path that clients with no login
	// may ask Anonymous for, else why not; nil means no anonymous pulls.
	AnonymousAccess func(path string) error
	// TokenRoute reports whether a path is a container token's (/v2/wt/).
	TokenRoute func(path string) bool
	Login      Credential
	Log        *slog.Logger
	Now        func() time.Time
}

// Handler is the public handler.
type Handler struct {
	o Options

	mu       sync.Mutex
	sessions map[[sha256.Size]byte]session // by the token's hash

	// wrongMu makes a login's check of the budget, its comparison and
	// its spending one step: otherwise many logins at once could all pass
	// the check with one guess left.
	wrongMu sync.Mutex
	wrong   *loginBudgets // the budgets of wrong logins, per client
}

type session struct {
	loggedIn bool
	expires  time.Time
}

// New returns the public handler.
func New(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenRoute == nil {
		o.TokenRoute = func(string) bool { return false }
	}
	if o.LoggedIn == nil {
		o.LoggedIn = o.Full
	}
	return &Handler{o: o, sessions: map[[sha256.Size]byte]session{},
		wrong: newLoginBudgets()}
}

// ServeHTTP implements http.Handler. Anything but the registry and the
// token endpoint is a 404: the admin routes do not exist here.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = peer.ThroughPublic(r)
	switch {
	case r.URL.Path == TokenPath:
		h.token(w, r)
	case r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/"):
		h.registry(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) registry(w http.ResponseWriter, r *http.Request) {
	s, err := h.authorize(r)
	var spent *budgetSpentError
	if errors.As(err, &spent) {
		spent.write(w, r)
		return
	}
	if err != nil {
		h.challenge(w, r)
		return
	}
	switch {
	case h.o.TokenRoute(r.URL.Path):
		h.o.Full.ServeHTTP(w, r)
		return
	case s.loggedIn:
		h.o.LoggedIn.ServeHTTP(w, r)
		return
	case h.o.AnonymousAccess == nil:
		h.refuse(w, r, errors.New("this tower-reg serves no images without a login"))
		return
	}
	if err := h.o.AnonymousAccess(r.URL.Path); err != nil {
		h.refuse(w, r, err)
		return
	}
	h.o.Anonymous.ServeHTTP(w, r)
}

// refuse answers an anonymous client that asked for what it may not have:
// a 401 with the challenge, so that a client that has the login sends it,
// and a message that says how to get access.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, why error) {
	h.setChallenge(w, r)
	errcode.Write(w, r, http.StatusUnauthorized, errcode.Entry{Code: "UNAUTHORIZED", Message: fmt.Sprintf(
		"%v: run `docker login %s` with the daemon's login, or pull through a container token (towerreg-dev token IMAGE)", why, r.Host)})
}

var errUnauthorized = errors.New("unauthorized")

// budgetSpentError refuses a login while the budget of wrong ones is
// spent, for as long as it takes to refill one.
type budgetSpentError struct{ wait time.Duration }

func (e *budgetSpentError) Error() string { return "too many wrong logins" }

func (e *budgetSpentError) write(w http.ResponseWriter, r *http.Request) {
	secs := max(1, int((e.wait+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	errcode.Write(w, r, http.StatusTooManyRequests, errcode.Entry{Code: "TOOMANYREQUESTS", Message: fmt.Sprintf(
		"too many wrong logins from your address to this tower-reg: no login of yours is checked for %d s", secs)})
}

// authorize finds the session of a request: a Bearer token from
// TokenPath, or the login itself as Basic auth, as curl users send it.
func (h *Handler) authorize(r *http.Request) (session, error) {
	if u, p, ok := r.BasicAuth(); ok {
		return session{loggedIn: true}, h.login(r, u, p)
	}
	t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return session{}, errUnauthorized
	}
	if t == anonymousToken {
		return session{}, nil
	}
	key := sha256.Sum256([]byte(t))
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[key]
	if !ok {
		return session{}, errUnauthorized
	}
	if !h.o.Now().Before(s.expires) {
		delete(h.sessions, key)
		return session{}, errUnauthorized
	}
	return s, nil
}

// login checks a login against its client's budget of wrong ones: while
// it is spent, the password is not even compared.
func (h *Handler) login(r *http.Request, user, password string) error {
	h.wrongMu.Lock()
	defer h.wrongMu.Unlock()
	now := h.o.Now()
	client := peer.Of(r)
	budget := h.wrong.of(client, now)
	if left := budget.TokensAt(now); left < 1 {
		return &budgetSpentError{wait: time.Duration((1 - left) * float64(wrongLoginRefill))}
	}
	if h.checkLogin(user, password) {
		return nil
	}
	budget.AllowN(now, 1)
	h.o.Log.Warn("public login refused", "user", user, "client", client.Key())
	return errUnauthorized
}

// checkLogin compares in constant time, hashes first so that the lengths
// do not show either.
func (h *Handler) checkLogin(user, password string) bool {
	if h.o.Login.Username == "" || h.o.Login.Password == "" {
		return false
	}
	hu, hp := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	wu, wp := sha256.Sum256([]byte(h.o.Login.Username)), sha256.Sum256([]byte(h.o.Login.Password))
	return subtle.ConstantTimeCompare(hu[:], wu[:])&subtle.ConstantTimeCompare(hp[:], wp[:]) == 1
}

// challenge answers 401 with the Bearer challenge that sends the client to
// TokenPath, as a registry with token auth does.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request) {
	h.setChallenge(w, r)
	errcode.Write(w, r, http.StatusUnauthorized, errcode.Entry{Code: "UNAUTHORIZED", Message: "authentication required: run `docker login " + r.Host + "` with the daemon's login, or let your client fetch an anonymous token"})
}

func (h *Handler) setChallenge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", Challenge(r))
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
}

// Challenge is the public handler's Bearer challenge for r: the one its
// 401s carry, including those that answer an upstream's 401, so that a
// client that has the login goes on to send it.
func Challenge(r *http.Request) string {
	c := fmt.Sprintf(`Bearer realm=%q,service=%q`, realm(r), service)
	if name := repoName(r.URL.Path); name != "" {
		c += fmt.Sprintf(`,scope="repository:%s:pull"`, name)
	}
	return c
}

// realm is the absolute URL of TokenPath as the client reached us. Behind
// the tunnel the request arrives as plain HTTP with X-Forwarded-Proto set
// by the tunnel's edge.
func realm(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + TokenPath
}

// repoName is the repository of a /v2/<name>/... path, for the challenge's
// scope; empty for /v2/ itself.
func repoName(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return ""
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, kind); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// token is the token endpoint of the distribution token spec: with the
// login as Basic auth it issues a logged-in token, without any an
// anonymous one, with a wrong login a 401. Clients that try the OAuth2
// POST first get a 404, which the spec says sends them to GET.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	var s session
	if u, p, ok := r.BasicAuth(); ok {
		var spent *budgetSpentError
		switch err := h.login(r, u, p); {
		case errors.As(err, &spent):
			spent.write(w, r)
			return
		case err != nil:
			errcode.Write(w, r, http.StatusUnauthorized, errcode.Entry{Code: "UNAUTHORIZED", Message: "wrong user name or password for this tower-reg"})
			return
		}
		s.loggedIn = true
	}
	now := h.o.Now()
	t := anonymousToken
	if s.loggedIn {
		s.expires = now.Add(sessionTTL)
		var b [32]byte
		rand.Read(b[:]) // crypto/rand.Read never fails
		t = hex.EncodeToString(b[:])
		h.mu.Lock()
		h.sweep(now)
		h.sessions[sha256.Sum256([]byte(t))] = s
		h.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}{t, t, int(sessionTTL / time.Second), now.UTC().Format(time.RFC3339)})
}

// sweep drops expired sessions; the caller holds mu.
func (h *Handler) sweep(now time.Time) {
	for k, s := range h.sessions {
		if !now.Before(s.expires) {
			delete(h.sessions, k)
		}
	}
}
