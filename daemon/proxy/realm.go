package proxy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
)

// realmPath is the path under a registry's own host:port by which a token
// realm on a private address is handed to ggcr; the rest of the path is the
// real realm, base64url-encoded.
const realmPath = "/.tower-reg/realm/"

// realmAlias lets the token realm of a registry be on a private or loopback
// address (registry:2 with a token server addressed by IP).
//
// ggcr refuses such a realm unless it is the registry's own host:port, an
// SSRF guard that has no option to turn it off. tower-reg has its own guard:
// every connection is checked at dial time by the audience's dial policy,
// which knows whether the client may reach that address. So the challenge is
// rewritten on its way up to name the realm under the registry's own host,
// which ggcr accepts, and the token request is turned back into the real
// realm on its way down, above the scheme guard and the dial policy, which
// then decide as for any other connection.
//
// A registry on a public address may not send the daemon to a private one:
// that is the hop rule of checkRedirect, and ggcr's, kept for realms.
type realmAlias struct {
	inner http.RoundTripper
}

func (a realmAlias) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, realmPath) {
		to, err := realmTarget(r)
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.URL, r.Host = to, ""
	}
	resp, err := a.inner.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if hs := resp.Header.Values("WWW-Authenticate"); len(hs) > 0 {
		out := make([]string, len(hs))
		for i, h := range hs {
			out[i] = aliasRealm(h, r.URL)
		}
		resp.Header["Www-Authenticate"] = out
	}
	return resp, nil
}

// realmTarget is the real token URL of an aliased realm request: the realm,
// with ggcr's query (scope, service) added to the realm's own.
func realmTarget(r *http.Request) (*url.URL, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(r.URL.Path, realmPath))
	if err != nil {
		return nil, fmt.Errorf("%w: a token realm alias that tower-reg did not make", dialpolicy.ErrRefused)
	}
	to, err := url.Parse(string(raw))
	if err != nil || (to.Scheme != "http" && to.Scheme != "https") {
		return nil, fmt.Errorf("%w: a token realm alias that tower-reg did not make", dialpolicy.ErrRefused)
	}
	if publicHost(r.Context(), r.URL.Hostname()) {
		return nil, fmt.Errorf("%w: registry %s, on a public address, names a token realm on the private address %s",
			dialpolicy.ErrRefused, r.URL.Host, to.Host)
	}
	q := to.Query()
	for k, v := range r.URL.Query() {
		q[k] = append(q[k], v...)
	}
	to.RawQuery = q.Encode()
	return to, nil
}

// realmParam finds the realm parameter of a challenge, quoted or not.
var realmParam = regexp.MustCompile(`(?i)\brealm\s*=\s*(?:"([^"]*)"|([^\s,"]+))`)

// aliasRealm rewrites a Bearer challenge whose realm is on a private IP
// address other than the registry's own host:port, the realms ggcr refuses.
func aliasRealm(challenge string, reg *url.URL) string {
	scheme, _, _ := strings.Cut(strings.TrimSpace(challenge), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return challenge
	}
	m := realmParam.FindStringSubmatchIndex(challenge)
	if m == nil {
		return challenge
	}
	var realm string
	if m[2] >= 0 {
		realm = challenge[m[2]:m[3]]
	} else {
		realm = challenge[m[4]:m[5]]
	}
	u, err := url.Parse(realm)
	if err != nil || u.Host == reg.Host || !privateIP(u.Hostname()) {
		return challenge
	}
	alias := fmt.Sprintf(`realm="%s://%s%s%s"`, u.Scheme, reg.Host, realmPath,
		base64.RawURLEncoding.EncodeToString([]byte(realm)))
	return challenge[:m[0]] + alias + challenge[m[1]:]
}

// privateIP reports whether host is an IP literal that is not public: the
// realms ggcr refuses. Names are left to ggcr and the dial policy.
func privateIP(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && !dialpolicy.Public(ip)
}
