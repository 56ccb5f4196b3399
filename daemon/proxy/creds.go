package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ValidateCreds runs the registry's own auth flow with user and password:
// the ping, then, for a Bearer registry, the token exchange with Basic
// credentials, and a GET of /v2/ with what it gave. It reports whether the
// registry accepted them; an error means the question could not be asked.
func (u *Upstream) ValidateCreds(ctx context.Context, registry, user, password string) (bool, error) {
	if !hostPattern.MatchString(registry) {
		return false, fmt.Errorf("%w: %q is not a registry host (lower-case host name or IP, optional port)", ErrNameInvalid, registry)
	}
	creg, err := name.NewRegistry(registry)
	if err != nil {
		return false, fmt.Errorf("%w: registry %q: %v", ErrNameInvalid, registry, err)
	}
	repo := Repo{Registry: creg.RegistryStr()}
	ctx = u.withOperation(ctx, repo.Host())
	var opts []name.Option
	if u.plainHTTP(repo.Host()) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(repo.Host(), opts...)
	if err != nil {
		return false, fmt.Errorf("%w: registry %q: %v", ErrNameInvalid, registry, err)
	}
	auth := &authn.Basic{Username: user, Password: password}
	rt, err := transport.NewWithContext(ctx, reg, auth, u.base, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		if refused(err) {
			return false, nil
		}
		return false, upstreamFailure(repo, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), repo.Host()), nil)
	if err != nil {
		return false, err
	}
	resp, err := (&http.Client{Transport: rt, CheckRedirect: checkRedirect}).Do(req)
	if err != nil {
		return false, upstreamFailure(repo, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return true, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return false, nil
	}
	return false, upstreamFailure(repo, transport.CheckError(resp, http.StatusOK))
}

// refused reports whether err is a registry's no to credentials.
func refused(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden)
}
