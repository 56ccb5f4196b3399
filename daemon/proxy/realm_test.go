package proxy

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

func TestAliasRealm(t *testing.T) {
	reg := &url.URL{Scheme: "http", Host: "127.0.0.1:5000"}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ name, in, want string }{
		{"private IP realm", `Bearer realm="http://10.0.0.5:5001/auth",service="reg"`,
			`Bearer realm="http://127.0.0.1:5000/.tower-reg/realm/` + enc("http://10.0.0.5:5001/auth") + `",service="reg"`},
		{"unquoted", `Bearer service="reg",realm=http://127.0.0.1:5001/auth`,
			`Bearer service="reg",realm="http://127.0.0.1:5000/.tower-reg/realm/` + enc("http://127.0.0.1:5001/auth") + `"`},
		{"registry's own host", `Bearer realm="http://127.0.0.1:5000/auth"`, `Bearer realm="http://127.0.0.1:5000/auth"`},
		{"public IP", `Bearer realm="https://8.8.8.8/auth"`, `Bearer realm="https://8.8.8.8/auth"`},
		{"a name", `Bearer realm="https://auth.docker.io/token"`, `Bearer realm="https://auth.docker.io/token"`},
		{"basic", `Basic realm="http://10.0.0.5/x"`, `Basic realm="http://10.0.0.5/x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := aliasRealm(tc.in, reg); got != tc.want {
				t.Errorf("aliasRealm(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRealmTarget: an aliased token request goes to the real realm, with
// ggcr's query added to the realm's own; a registry on a public address may
// not send the daemon to a private realm, and an alias tower-reg did not
// make goes nowhere.
func TestRealmTarget(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, url, want string
		refused         bool
	}{
		{"loopback registry", "http://127.0.0.1:5000" + realmPath + enc("http://127.0.0.1:5001/auth?x=1") + "?scope=repository%3Aa%3Apull&service=reg",
			"http://127.0.0.1:5001/auth?scope=repository%3Aa%3Apull&service=reg&x=1", false},
		{"public registry, private realm", "https://8.8.8.8" + realmPath + enc("http://10.0.0.5/auth"), "", true},
		{"not base64", "http://127.0.0.1:5000" + realmPath + "!!!", "", true},
		{"not http", "http://127.0.0.1:5000" + realmPath + enc("file:///etc/passwd"), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.url, nil)
			got, err := realmTarget(r)
			if tc.refused {
				if !errors.Is(err, dialpolicy.ErrRefused) {
					t.Fatalf("got %v, %v; want a refusal", got, err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}
