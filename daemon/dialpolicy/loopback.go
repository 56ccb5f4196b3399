package dialpolicy

import (
	"net"
	"net/netip"
	"strings"
)

// Loopback reports whether host, with or without a port, names this
// machine's loopback: localhost (in any case, as DNS names are), or a
// literal loopback address (127.0.0.0/8, ::1, IPv4-mapped ones). It is
// decided on the name as written, never by resolving it, so that no DNS
// answer can make a remote host look local: where the connection then
// goes is the dial policy's to check. One predicate for the three
// questions: may --listen serve it, is a registry reached over plain
// HTTP, may a layer location be plain HTTP.
func Loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
