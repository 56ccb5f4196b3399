package tokenserver_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/internal/tokenserver"
)

const (
	issuer  = "test-issuer"
	service = "test-registry"
)

func newServer(t *testing.T, lifetime time.Duration) (*tokenserver.Server, *httptest.Server) {
	t.Helper()
	s, err := tokenserver.New(tokenserver.Options{
		Issuer: issuer, Service: service,
		Users:          map[string]string{"alice": "s3cret"},
		PublicPrefix:   "public/",
		Lifetime:       lifetime,
		VerifierLeeway: tokenserver.DistributionLeeway,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// verified is a token checked as distribution checks it: the x5c leaf
// chains to the PEM bundle, and the RS256 signature is the leaf key's.
type verified struct {
	Header struct {
		Alg string   `json:"alg"`
		Typ string   `json:"typ"`
		X5c []string `json:"x5c"`
	}
	Claims struct {
		Iss    string               `json:"iss"`
		Sub    string               `json:"sub"`
		Aud    string               `json:"aud"`
		Exp    int64                `json:"exp"`
		Nbf    int64                `json:"nbf"`
		Iat    int64                `json:"iat"`
		Jti    string               `json:"jti"`
		Access []tokenserver.Access `json:"access"`
	}
}

func verify(t *testing.T, bundle []byte, tok string) verified {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("a JWT has 3 parts, this one %d", len(parts))
	}
	var v verified
	for i, dst := range []any{&v.Header, &v.Claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if v.Header.Alg != "RS256" || v.Header.Typ != "JWT" || len(v.Header.X5c) != 1 {
		t.Fatalf("header %+v, want RS256 JWT with one x5c certificate", v.Header)
	}
	der, err := base64.StdEncoding.DecodeString(v.Header.X5c[0])
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	block, _ := pem.Decode(bundle)
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("x5c does not chain to the bundle: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(leaf.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
	return v
}

func TestTokens(t *testing.T) {
	s, srv := newServer(t, 90*time.Second)
	tests := []struct {
		name       string
		user, pass string
		service    string
		scopes     []string
		status     int
		sub        string
		access     []tokenserver.Access
	}{
		{name: "anonymous pull of public", service: service, scopes: []string{"repository:public/img:pull"},
			status: 200, access: []tokenserver.Access{{Type: "repository", Name: "public/img", Actions: []string{"pull"}}}},
		{name: "anonymous push of public gets the pull only", service: service, scopes: []string{"repository:public/img:pull,push"},
			status: 200, access: []tokenserver.Access{{Type: "repository", Name: "public/img", Actions: []string{"pull"}}}},
		{name: "anonymous pull of private gets nothing", service: service, scopes: []string{"repository:private/img:pull"},
			status: 200, access: nil},
		{name: "user pull and push of private", user: "alice", pass: "s3cret", service: service,
			scopes: []string{"repository:private/img:pull,push"}, status: 200, sub: "alice",
			access: []tokenserver.Access{{Type: "repository", Name: "private/img", Actions: []string{"pull", "push"}}}},
		{name: "two scopes in one parameter, a host:port name", user: "alice", pass: "s3cret", service: service,
			scopes: []string{"repository:a/b:pull repository:localhost:5000/c:pull"}, status: 200, sub: "alice",
			access: []tokenserver.Access{
				{Type: "repository", Name: "a/b", Actions: []string{"pull"}},
				{Type: "repository", Name: "localhost:5000/c", Actions: []string{"pull"}},
			}},
		{name: "no scope: a token with no access", service: service, status: 200, access: nil},
		{name: "wrong password", user: "alice", pass: "nope", service: service, scopes: []string{"repository:public/img:pull"}, status: 401},
		{name: "unknown user", user: "mallory", pass: "s3cret", service: service, scopes: []string{"repository:public/img:pull"}, status: 401},
		{name: "another service", service: "elsewhere", scopes: []string{"repository:public/img:pull"}, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"service": {tt.service}, "scope": tt.scopes}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/token?"+q.Encode(), nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			before := time.Now().Unix()
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tt.status != 200 {
				return
			}
			var a struct {
				Token       string `json:"token"`
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
				IssuedAt    string `json:"issued_at"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Fatal(err)
			}
			if a.Token == "" || a.Token != a.AccessToken {
				t.Fatalf("token %q, access_token %q: want the same token in both", a.Token, a.AccessToken)
			}
			if a.ExpiresIn != 90 {
				t.Errorf("expires_in %d, want 90", a.ExpiresIn)
			}
			if _, err := time.Parse(time.RFC3339, a.IssuedAt); err != nil {
				t.Errorf("issued_at %q: %v", a.IssuedAt, err)
			}
			v := verify(t, s.CertPEM(), a.Token)
			c := v.Claims
			if c.Iss != issuer || c.Aud != service || c.Sub != tt.sub || c.Jti == "" {
				t.Errorf("claims iss %q aud %q sub %q jti %q", c.Iss, c.Aud, c.Sub, c.Jti)
			}
			// exp is set the verifier's leeway early: 90 s - 60 s, rounded
			// up to the second.
			if c.Iat < before || c.Nbf != c.Iat || c.Exp-c.Iat < 30 || c.Exp-c.Iat > 31 {
				t.Errorf("iat %d nbf %d exp %d, want iat >= %d, nbf = iat, exp = iat+30 or 31", c.Iat, c.Nbf, c.Exp, before)
			}
			if len(c.Access) == 0 && len(tt.access) == 0 {
				return
			}
			if !reflect.DeepEqual(c.Access, tt.access) {
				t.Errorf("access %+v, want %+v", c.Access, tt.access)
			}
		})
	}
}

func TestLifetimeAndGrants(t *testing.T) {
	s, srv := newServer(t, time.Minute)
	get := func() int {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/token?service=" + service + "&scope=repository:public/x:pull")
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			ExpiresIn int `json:"expires_in"`
		}
		json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return a.ExpiresIn
	}
	if n := get(); n != 60 {
		t.Errorf("expires_in %d, want 60", n)
	}
	s.SetLifetime(2 * time.Second)
	if n := get(); n != 2 {
		t.Errorf("after SetLifetime(2s): expires_in %d, want 2", n)
	}
	if _, err := s.Token("alice", tokenserver.Access{Type: "repository", Name: "x", Actions: []string{"push"}}); err != nil {
		t.Fatal(err)
	}
	g := s.Grants()
	if len(g) != 2 {
		t.Fatalf("%d grants, want the 2 of the realm", len(g))
	}
	if g[0].Subject != "" || g[1].Issued.Before(g[0].Issued) {
		t.Errorf("grants %+v", g)
	}
}

func TestPostIsNotServed(t *testing.T) {
	_, srv := newServer(t, time.Minute)
	resp, err := srv.Client().Post(srv.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=password"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Docker falls back to GET on a 404 of its OAuth2 POST.
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST: %d, want 404", resp.StatusCode)
	}
}
