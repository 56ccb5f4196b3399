package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DefaultPresignTTL is how long an offload URL stays valid when the config
// sets none: long enough for a slow client to start a large layer, short
// enough that a leaked URL soon stops working.
const DefaultPresignTTL = 15 * time.Minute

// DefaultRecheck is how long an object seen in the offload store is
// trusted before a redirect to it looks again, when the config sets none:
// a store that went down mid-run, or an object a lifecycle rule expired,
// costs pulls a redirect that fails for at most that long, and the checks
// of a cluster pulling at once are one request.
const DefaultRecheck = 10 * time.Second

// maxPresignTTL is the longest a SigV4 presigned URL may live.
const maxPresignTTL = 7 * 24 * time.Hour

// Offload names the S3-compatible store that serves the blobs the daemon
// must serve itself (the injected layers) to public clients. An empty URL
// means no offload. Credentials are not here: they come from the standard
// AWS variables and shared files, so that no secret sits in the config.
type Offload struct {
	// URL is s3://bucket or s3://bucket/prefix.
	URL string `yaml:"url"`
	// Endpoint is an S3-compatible store's URL (http://127.0.0.1:7070);
	// empty means AWS S3. It is reached with path-style requests.
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region; empty means us-east-1 for an
	// Endpoint, else the bucket's own (asked of S3).
	Region string `yaml:"region"`
	// PresignTTL is how long a redirect's URL is valid; zero means
	// DefaultPresignTTL.
	PresignTTL Duration `yaml:"presign_ttl"`
	// UpstreamBlobs also uploads upstream blobs that stream rather than
	// redirect, on their first pull.
	UpstreamBlobs bool `yaml:"upstream_blobs"`
	// Recheck is how long an object seen in the store is trusted before
	// a redirect to it checks again; zero means DefaultRecheck.
	Recheck Duration `yaml:"recheck"`
}

// On reports whether an offload store is configured.
func (o Offload) On() bool { return o.URL != "" }

// TTL is PresignTTL, or its default.
func (o Offload) TTL() time.Duration {
	if v := o.PresignTTL.Value(); v > 0 {
		return v
	}
	return DefaultPresignTTL
}

// RecheckEvery is Recheck, or its default.
func (o Offload) RecheckEvery() time.Duration {
	if v := o.Recheck.Value(); v > 0 {
		return v
	}
	return DefaultRecheck
}

// ParseOffloadURL splits s3://bucket/prefix into the bucket and the key
// prefix, without slashes at its ends.
func ParseOffloadURL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL like s3://bucket/prefix", s)
	}
	if u.Scheme != "s3" {
		return "", "", fmt.Errorf("%q: want an s3:// URL like s3://bucket/prefix", s)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("%q names no bucket: want s3://bucket/prefix", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q: want only s3://bucket/prefix (credentials come from the AWS variables)", s)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// check validates the offload section; the error names the key at fault,
// which Load turns into a line.
func (o Offload) check() (key string, err error) {
	if err := o.PresignTTL.check(); err != nil {
		return "presign_ttl", err
	}
	if o.PresignTTL.Value() > maxPresignTTL {
		return "presign_ttl", fmt.Errorf("%q is longer than 7 days, the longest a presigned URL lives", string(o.PresignTTL))
	}
	if err := o.Recheck.check(); err != nil {
		return "recheck", err
	}
	// The rest without a url is kept: `up --offload URL` may supply it.
	if o.On() {
		if _, _, err := ParseOffloadURL(o.URL); err != nil {
			return "url", err
		}
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "endpoint", fmt.Errorf("%q is not a URL like https://s3.example.com or http://127.0.0.1:7070", o.Endpoint)
		}
	}
	return "", nil
}
