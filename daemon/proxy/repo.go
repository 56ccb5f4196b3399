package proxy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNameInvalid marks a repository name or reference that is malformed.
var ErrNameInvalid = errors.New("invalid name")

// ErrDigestInvalid marks a digest that is malformed or of an unknown
// algorithm.
var ErrDigestInvalid = errors.New("invalid digest")

// The grammar of distribution's reference package.
var (
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// hostPattern is a DNS name, IPv4 or bracketed IPv6 address, with an
	// optional port. Lower case only, as Docker requires.
	hostPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$`)
)

// maxNameLen is distribution's limit on a repository name, host included.
const maxNameLen = 255

const (
	dockerHub     = "index.docker.io"
	dockerHubHost = "registry-1.docker.io"
)

// Repo is an upstream repository.
type Repo struct {
	// Registry is the canonical registry name ("index.docker.io" for Docker
	// Hub), used to find credentials.
	Registry string
	// Path is the repository path on that registry ("library/busybox").
	Path string
}

// String returns the canonical name, e.g. "index.docker.io/library/busybox".
func (r Repo) String() string { return r.Registry + "/" + r.Path }

// Host is the host the registry API is reached at.
func (r Repo) Host() string {
	if r.Registry == dockerHub {
		return dockerHubHost
	}
	return r.Registry
}

// ParseRepo resolves the name in /v2/<name>/... to an upstream repository.
// The first component is a registry host when it contains a '.' or a ':' or
// is "localhost"; otherwise the name lives on defaultRegistry. Docker Hub
// one-word names get "library/" in front.
func ParseRepo(n, defaultRegistry string) (Repo, error) {
	if n == "" || len(n) > maxNameLen {
		return Repo{}, fmt.Errorf("%w: repository name must have 1 to %d characters", ErrNameInvalid, maxNameLen)
	}
	reg, path := defaultRegistry, n
	if first, rest, ok := strings.Cut(n, "/"); ok {
		if h := portSpelling(first); isHost(h) {
			reg, path = h, rest
		}
	}
	// A default registry without a dot, port or "localhost" would be taken
	// by ggcr for the first path component of a Docker Hub name.
	if !hostPattern.MatchString(reg) || !isHost(reg) {
		return Repo{}, fmt.Errorf("%w: %q is not a registry host (a lower-case host name with a dot, \"localhost\" or an IP, and an optional port)", ErrNameInvalid, reg)
	}
	// The limit is on the name with its registry, as distribution counts
	// it, so that the resolved name parses again.
	if len(reg)+1+len(path) > maxNameLen {
		return Repo{}, fmt.Errorf("%w: repository name must have 1 to %d characters with its registry", ErrNameInvalid, maxNameLen)
	}
	// ggcr checks the characters and the host; the component grammar (no
	// empty, dotted or upper-case components) is distribution's and checked
	// here, so every client gets the same NAME_INVALID Docker would give.
	for _, c := range strings.Split(path, "/") {
		if !pathComponent.MatchString(c) {
			return Repo{}, fmt.Errorf("%w: %q: path component %q must match %s", ErrNameInvalid, n, c, pathComponent)
		}
	}
	r, err := name.NewRepository(reg + "/" + path)
	if err != nil {
		return Repo{}, fmt.Errorf("%w: %q: %v", ErrNameInvalid, n, err)
	}
	return Repo{Registry: r.RegistryStr(), Path: r.RepositoryStr()}, nil
}

// portSpelling turns "127.0.0.1_5000" into "127.0.0.1:5000". Docker's
// reference grammar allows no ':' in a path component, so docker, podman,
// skopeo and crane refuse HOST/127.0.0.1:5000/repo; '_' never occurs in a
// host name, so it can stand for the port's colon unambiguously.
func portSpelling(s string) string {
	if i := strings.LastIndexByte(s, '_'); i > 0 && i < len(s)-1 && strings.Trim(s[i+1:], "0123456789") == "" && isHost(s[:i]) {
		return s[:i] + ":" + s[i+1:]
	}
	return s
}

func isHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// Ref is a manifest reference: a tag or a digest.
type Ref struct {
	Tag    string
	Digest v1.Hash
}

// IsDigest reports whether the reference is a digest.
func (r Ref) IsDigest() bool { return r.Tag == "" }

// String returns the tag or the digest.
func (r Ref) String() string {
	if r.IsDigest() {
		return r.Digest.String()
	}
	return r.Tag
}

// ParseRef parses a tag or a digest.
func ParseRef(s string) (Ref, error) {
	if strings.Contains(s, ":") {
		h, err := ParseDigest(s)
		if err != nil {
			return Ref{}, err
		}
		return Ref{Digest: h}, nil
	}
	if !tagPattern.MatchString(s) {
		return Ref{}, fmt.Errorf("%w: tag %q", ErrNameInvalid, s)
	}
	return Ref{Tag: s}, nil
}

// ParseDigest parses a sha256 digest. Other algorithms are refused: the
// store and the rewrite only speak sha256.
func ParseDigest(s string) (v1.Hash, error) {
	h, err := v1.NewHash(s)
	if err != nil || h.Algorithm != "sha256" {
		return v1.Hash{}, fmt.Errorf("%w: %q", ErrDigestInvalid, s)
	}
	return h, nil
}
