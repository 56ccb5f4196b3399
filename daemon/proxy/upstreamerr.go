package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CredentialsError marks an upstream's 401: the registry wants credentials
// that the daemon does not have, or refused the ones it sent. It names the
// registry so that the client can be told where to give them.
type CredentialsError struct {
	Registry string // as the keychain and `docker login` name it
	Err      error
}

func (e *CredentialsError) Error() string { return e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

// wantsCredentials reports whether err is a registry's 401.
func wantsCredentials(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized
}

// ggcrRealmRefusal begins the error of ggcr's own realm check
// (fromChallenge in its transport), which still refuses what realmAlias
// does not take around it: an http realm for a registry reached over https,
// an IP literal in a form netip does not parse. ggcr gives it no type.
const ggcrRealmRefusal = "invalid realm in www-authenticate"

// realmRefused reports whether err is ggcr's realm check saying no: a
// policy's refusal, which no retry will change, and not an unavailable
// upstream.
func realmRefused(err error) bool {
	return strings.Contains(err.Error(), ggcrRealmRefusal)
}

// registryError is an upstream registry's error answer with a text for
// logs and messages. ggcr's own text appends each diagnostic's detail as a
// Go value (`MANIFEST_UNKNOWN: manifest unknown; map[Tag:latest]`); the
// detail is left out here, and kept as JSON in the answer to the client
// (see api's upstreamError).
type registryError struct {
	err error            // the error as it came
	te  *transport.Error // the registry's answer inside it
}

func (e registryError) Unwrap() error { return e.err }

func (e registryError) Error() string {
	return strings.Replace(e.err.Error(), e.te.Error(), describe(e.te), 1)
}

// describe is te's text with each diagnostic's code and message only.
func describe(te *transport.Error) string {
	if len(te.Errors) == 0 {
		return te.Error() // no details to dump
	}
	ds := make([]string, len(te.Errors))
	for i, d := range te.Errors {
		ds[i] = fmt.Sprintf("%s: %s", d.Code, d.Message)
	}
	s := strings.Join(ds, "; ")
	if r := te.Request; r != nil {
		// Without the query, which may carry a token or credentials, as
		// ggcr's own redaction would have masked it anyway.
		u := *r.URL
		u.RawQuery = ""
		s = fmt.Sprintf("%s %s: %s", r.Method, u.Redacted(), s)
	}
	return s
}
