// Package tokenserver is a Docker registry token server for tests: the
// Bearer flow that Docker Hub and distribution's `auth.token` use. A client
// sends GET realm?service=S&scope=repository:NAME:pull,push, with Basic
// credentials or none, and gets a JWT signed RS256 whose x5c header carries
// the server's self-signed certificate, the certificate distribution is
// told to trust (rootcertbundle).
//
// The policy is the one a test of a proxy needs: anyone may pull the
// repositories under one public prefix; the configured users may pull and
// push everything. Wrong credentials are a 401, as distribution's spec
// says; an anonymous request for more than it may have gets a token with
// only what it may (the registry then says no).
package tokenserver

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server.
type Options struct {
	// Issuer is the iss claim: distribution's auth.token.issuer.
	Issuer string
	// Service is the service the tokens are for (the aud claim):
	// distribution's auth.token.service. A request for another is a 400.
	Service string
	// Users maps user names to passwords. They may pull and push anything.
	Users map[string]string
	// PublicPrefix is the repository prefix ("public/") anyone may pull
	// without credentials. Empty: no anonymous pulls.
	PublicPrefix string
	// Lifetime is how long a token is good for, as the registry sees it
	// (default 5 minutes). SetLifetime changes it later.
	Lifetime time.Duration
	// VerifierLeeway is the clock skew the registry forgives past exp.
	// distribution forgives 60 s, so that a token with a 1 s lifetime
	// would be taken for a minute; the exp claim is set this much earlier
	// so that the registry refuses the token Lifetime after it was issued,
	// or up to a second later: claims are whole seconds, rounded up so that
	// a token is never good for less than Lifetime.
	VerifierLeeway time.Duration
	// Log gets one line per token request (default: discarded).
	Log *slog.Logger
}

// DistributionLeeway is the leeway distribution's auth.token (2.8 and 3)
// gives the exp and nbf claims.
const DistributionLeeway = 60 * time.Second

// Grant is one token the server issued: who asked, and for what.
type Grant struct {
	Subject string // the user, or "" for anonymous
	Access  []Access
	Issued  time.Time
}

// Access is one claim of the access list: the actions granted on a
// resource, as distribution's ResourceActions.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Server issues tokens. It is an http.Handler for the realm.
type Server struct {
	opts     Options
	key      *rsa.PrivateKey
	certDER  []byte
	lifetime atomic.Int64 // nanoseconds

	mu     sync.Mutex
	grants []Grant
}

// New makes a server with a fresh RSA key and a self-signed certificate.
func New(o Options) (*Server, error) {
	if o.Issuer == "" || o.Service == "" {
		return nil, fmt.Errorf("tokenserver: Issuer and Service are required")
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("tokenserver: key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: o.Issuer},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tokenserver: certificate: %w", err)
	}
	s := &Server{opts: o, key: key, certDER: der}
	s.lifetime.Store(int64(o.Lifetime))
	return s, nil
}

// CertPEM is the certificate the tokens are signed under, PEM-encoded: the
// registry's rootcertbundle.
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.certDER})
}

// SetLifetime changes the lifetime of the tokens issued from now on.
func (s *Server) SetLifetime(d time.Duration) { s.lifetime.Store(int64(d)) }

// Grants returns the tokens the realm issued so far, oldest first.
func (s *Server) Grants() []Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Grant(nil), s.grants...)
}

// answer is the token endpoint's JSON: token and access_token both, as
// Docker Hub answers, since clients read one or the other.
type answer struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// Docker tries the OAuth2 POST first and falls back to GET on 404.
		writeError(w, http.StatusNotFound, "UNSUPPORTED", "only GET with Basic credentials is served here")
		return
	}
	q := r.URL.Query()
	if svc := q.Get("service"); svc != s.opts.Service {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", fmt.Sprintf("unknown service %q", svc))
		return
	}
	subject := ""
	if user, password, ok := r.BasicAuth(); ok {
		if !s.valid(user, password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+s.opts.Issuer+`"`)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "wrong user name or password")
			s.opts.Log.Info("token refused", "user", user)
			return
		}
		subject = user
	}
	var scopes []string
	for _, v := range q["scope"] {
		scopes = append(scopes, strings.Fields(v)...)
	}
	access := s.grant(subject, scopes)
	now := time.Now()
	lifetime := time.Duration(s.lifetime.Load())
	tok, err := s.sign(subject, access, now, lifetime)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	s.mu.Lock()
	s.grants = append(s.grants, Grant{Subject: subject, Access: access, Issued: now})
	s.mu.Unlock()
	s.opts.Log.Info("token issued", "user", subject, "scopes", scopes, "lifetime", lifetime)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer{
		Token: tok, AccessToken: tok,
		ExpiresIn: max(1, int(lifetime/time.Second)),
		IssuedAt:  now.UTC().Format(time.RFC3339),
	})
}

func (s *Server) valid(user, password string) bool {
	want, ok := s.opts.Users[user]
	// Compared even for an unknown user, so that the time does not say
	// which users exist.
	match := subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
	return ok && match
}

// grant decides, scope by scope, what subject gets: scopes it may have
// nothing of are left out, as distribution's spec says.
func (s *Server) grant(subject string, scopes []string) []Access {
	var out []Access
	for _, sc := range scopes {
		typ, rest, ok := strings.Cut(sc, ":")
		i := strings.LastIndex(rest, ":")
		if !ok || i < 0 {
			continue // malformed: nothing granted for it
		}
		name, actions := rest[:i], strings.Split(rest[i+1:], ",")
		var granted []string
		for _, a := range actions {
			if s.allowed(subject, typ, name, a) {
				granted = append(granted, a)
			}
		}
		if len(granted) > 0 {
			out = append(out, Access{Type: typ, Name: name, Actions: granted})
		}
	}
	return out
}

func (s *Server) allowed(subject, typ, name, action string) bool {
	if subject != "" {
		return true
	}
	return typ == "repository" && action == "pull" &&
		s.opts.PublicPrefix != "" && strings.HasPrefix(name, s.opts.PublicPrefix)
}

// claims are those distribution's auth.token checks: iss, aud (a string:
// 2.8 reads no list), exp and nbf with its leeway, and access.
type claims struct {
	Issuer     string   `json:"iss"`
	Subject    string   `json:"sub"`
	Audience   string   `json:"aud"`
	Expiration int64    `json:"exp"`
	NotBefore  int64    `json:"nbf"`
	IssuedAt   int64    `json:"iat"`
	JWTID      string   `json:"jti"`
	Access     []Access `json:"access"`
}

type header struct {
	Type      string   `json:"typ"`
	Algorithm string   `json:"alg"`
	X5c       []string `json:"x5c"`
}

func (s *Server) sign(subject string, access []Access, now time.Time, lifetime time.Duration) (string, error) {
	var jti [16]byte
	rand.Read(jti[:])
	if access == nil {
		access = []Access{} // distribution reads null as no access too, but say it plainly
	}
	c := claims{
		Issuer: s.opts.Issuer, Subject: subject, Audience: s.opts.Service,
		Expiration: ceilUnix(now.Add(lifetime - s.opts.VerifierLeeway)),
		NotBefore:  now.Unix(), IssuedAt: now.Unix(),
		JWTID:  base64.RawURLEncoding.EncodeToString(jti[:]),
		Access: access,
	}
	h := header{Type: "JWT", Algorithm: "RS256", X5c: []string{base64.StdEncoding.EncodeToString(s.certDER)}}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("tokenserver: sign: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ceilUnix is t in Unix seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

// Token issues a token for subject with access, outside the HTTP flow: for
// a test that seeds the registry with a client that has no token flow of
// its own, or whose realm check would refuse the realm. It is not one of
// the Grants, which are the realm's.
func (s *Server) Token(subject string, access ...Access) (string, error) {
	return s.sign(subject, access, time.Now(), time.Duration(s.lifetime.Load()))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
