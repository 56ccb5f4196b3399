package api

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// AllowHosts serves only requests whose Host header names this machine:
// localhost, a loopback address, or one of names (host names, a port
// ignored), with any port. The local handler listens on loopback, but a
// browser sends there whatever a page's name resolves to: a page at
// evil.example whose name is re-pointed to 127.0.0.1 (DNS rebinding)
// would otherwise read the registry and the admin API as a same-origin
// page. Its requests carry its own name in Host, which is refused here
// with 421 Misdirected Request: an OCI error on /v2, plain text elsewhere.
func AllowHosts(names []string, next http.Handler) http.Handler {
	allowed := map[string]bool{"localhost": true}
	for _, n := range names {
		if h := hostname(n); h != "" {
			allowed[h] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostAllowed(allowed, r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		const msg = "this tower-reg answers to localhost and loopback addresses, its --listen host and the names in local.hosts of its config only: add this machine's name there to use it"
		if IsRegistryPath(r.URL.Path) {
			writeError(w, r, slog.New(slog.DiscardHandler), parseRoute(r.URL.Path).kind,
				newError(http.StatusMisdirectedRequest, codeDenied, msg))
			return
		}
		http.Error(w, msg, http.StatusMisdirectedRequest)
	})
}

// hostAllowed tells whether the Host header h names this machine. An IP
// address can be no rebound name, so any loopback one is taken; other
// addresses are not this handler's (it listens on loopback only).
func hostAllowed(allowed map[string]bool, h string) bool {
	name := hostname(h)
	if name == "" {
		// No Host at all (HTTP/1.0): no browser sends that, and a
		// rebinding page always sends its name.
		return h == ""
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		return ip.Unmap().IsLoopback()
	}
	return allowed[name]
}

// hostname is the host of a Host header or a configured name: without
// its port and IPv6 brackets, lower-case, without a final dot (a fully
// qualified "localhost." is localhost).
func hostname(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
