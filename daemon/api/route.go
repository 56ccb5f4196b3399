package api

import (
	"strings"

	"github.com/tower-reg/tower-reg/daemon/proxy"
)

// kind is what a request asks for: a /v2/ route, or one of the admin
// routes whose errors classify has rows of their own for.
type kind int

const (
	kindBase kind = iota
	kindManifest
	kindBlob
	kindTags
	kindReferrers
	kindUnknown
	// kindContainerToken is POST /container-token, kindValidateCreds
	// POST /validate-creds.
	kindContainerToken
	kindValidateCreds
)

// route is a parsed /v2/ request path.
type route struct {
	kind kind
	name string // the repository name as the client wrote it
	ref  string // tag or digest, for manifests and blobs; the subject digest, for referrers
	// upstream, when set, is the repository the name stands for: a
	// container token's, which its route names without the registry.
	upstream *proxy.Repo
}

// parseRoute reads a /v2/ path from its end, because repository names
// contain slashes: /v2/<name>/manifests/<ref>, /v2/<name>/blobs/<digest>,
// /v2/<name>/tags/list, /v2/<name>/referrers/<digest>.
func parseRoute(path string) route {
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok {
		return route{kind: kindUnknown}
	}
	if rest == "" || rest == "/" {
		return route{kind: kindBase}
	}
	if !strings.HasPrefix(rest, "/") {
		// "/v20/manifests/x" is not a repository "0" (found by fuzzing).
		return route{kind: kindUnknown}
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	n := len(parts)
	if n >= 3 {
		name := strings.Join(parts[:n-2], "/")
		switch {
		case parts[n-2] == "manifests":
			return route{kind: kindManifest, name: name, ref: parts[n-1]}
		case parts[n-2] == "blobs":
			return route{kind: kindBlob, name: name, ref: parts[n-1]}
		case parts[n-2] == "referrers":
			return route{kind: kindReferrers, name: name, ref: parts[n-1]}
		case parts[n-2] == "tags" && parts[n-1] == "list":
			return route{kind: kindTags, name: name}
		}
	}
	return route{kind: kindUnknown}
}

// repo resolves the route's name against the default registry.
func (rt route) repo(defaultRegistry string) (proxy.Repo, error) {
	if rt.upstream != nil {
		return *rt.upstream, nil
	}
	return proxy.ParseRepo(rt.name, defaultRegistry)
}
