package fetch

import (
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/tower-reg/tower-reg/daemon/dialpolicy"
	"github.com/tower-reg/tower-reg/daemon/errcode"
)

// CheckLocation tells whether Fetch would try loc at all: an https URL,
// an http URL on a loopback host, or a file URL with an absolute path.
// The error wraps ErrLocation. It does no I/O, so request decoders can call
// it to refuse a bad location before anything is fetched.
func CheckLocation(loc string) error {
	_, err := parseLocation(loc)
	return err
}

func parseLocation(loc string) (*url.URL, error) {
	if loc == "" {
		return nil, fmt.Errorf("%w: empty location", ErrLocation)
	}
	u, err := url.Parse(loc)
	if err != nil {
		// url.Error repeats the whole location, query and all; the query of
		// a presigned URL is a credential, so say less.
		return nil, fmt.Errorf("%w: not a URL", ErrLocation)
	}
	if u.Scheme == "file" {
		return u, checkFileURL(u)
	}
	return u, checkHTTPURL(u)
}

// checkHTTPURL is the rule for locations and for every redirect step.
func checkHTTPURL(u *url.URL) error {
	if u.User != nil {
		// Basic credentials would go to the location host on every request
		// and land in logs; a presigned URL carries its own authorization.
		return fmt.Errorf("%w: %s: credentials in a location are not allowed", ErrLocation, redact(u))
	}
	switch u.Scheme {
	case "https":
		if u.Hostname() == "" {
			return fmt.Errorf("%w: %s: no host", ErrLocation, redact(u))
		}
		return nil
	case "http":
		if u.Hostname() == "" {
			return fmt.Errorf("%w: %s: no host", ErrLocation, redact(u))
		}
		if !dialpolicy.Loopback(u.Hostname()) {
			return fmt.Errorf("%w: %s: plain http is allowed to loopback hosts only (localhost, 127.0.0.0/8, ::1); use https", ErrLocation, redact(u))
		}
		return nil
	case "":
		return fmt.Errorf("%w: %q has no scheme (https, http on loopback or file)", ErrLocation, shorten(u.String()))
	default:
		return fmt.Errorf("%w: scheme %q is not allowed (https, http on loopback or file)", ErrLocation, u.Scheme)
	}
}

func checkFileURL(u *url.URL) error {
	if u.Opaque != "" {
		return fmt.Errorf("%w: file:%s: a file location needs an absolute path (file:///dir/layer.tar.gz)", ErrLocation, shorten(u.Opaque))
	}
	if u.Host != "" && u.Host != "localhost" {
		// file://rel/x.tar.gz parses with host "rel": a relative path, or
		// another machine's file, and neither can be read here.
		return fmt.Errorf("%w: file://%s%s: a file location needs an absolute path (file:///dir/layer.tar.gz)", ErrLocation, shorten(u.Host), shorten(u.Path))
	}
	if u.User != nil {
		return fmt.Errorf("%w: file URL with credentials", ErrLocation)
	}
	if !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path {
		return fmt.Errorf("%w: file://%s: a file location needs a clean absolute path", ErrLocation, shorten(u.Path))
	}
	return nil
}

// redact drops the query and fragment: a presigned URL's signature lives
// there, and error messages end up in logs and API answers.
func redact(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	s := c.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return shorten(s)
}

// shorten keeps a location in a message to its first 200 bytes.
func shorten(s string) string { return errcode.Shorten(s, 200) }
