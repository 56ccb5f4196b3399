package proxy

import (
	"encoding/base64"
	"net/url"
	"testing"
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
