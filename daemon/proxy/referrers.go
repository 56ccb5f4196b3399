package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ReferrersMediaType is the media type of every referrers answer: an OCI
// image index whose manifests are the referrers' descriptors.
const ReferrersMediaType = types.OCIImageIndex

// emptyReferrers is the OCI 1.1 answer for a subject with no referrers.
const emptyReferrers = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`

// Referrers is a referrers answer.
type Referrers struct {
	// Bytes is the index, as the upstream gave it unless filtered here.
	Bytes []byte
	// Subject is the upstream digest whose referrers these are: the one
	// asked for, or the one a manifest tower-reg made was made from.
	Subject v1.Hash
	// Filtered is true when only referrers of the artifact type asked for
	// are listed, whoever applied the filter.
	Filtered bool
}

// Referrers lists the referrers of d in repo. A digest this Rewriting made
// stands for the upstream digest it was made from: signatures and
// attestations name the original image, and nothing can name the rewrite.
func (rw *Rewriting) Referrers(ctx context.Context, repo Repo, d v1.Hash, artifactType string) (Referrers, error) {
	subject := d
	if s, err := rw.stored(repo, d); err == nil && s.Upstream != (v1.Hash{}) {
		subject = s.Upstream
	}
	b, filtered, err := rw.up.Referrers(ctx, repo, subject, artifactType)
	if isNotFound(err) {
		// No referrers API upstream. OCI clients would fall back to the
		// tag schema themselves, but an empty answer from here would stop
		// them, and for a rewritten digest they would read the wrong tag:
		// so the fallback is read here, for the upstream subject.
		b, filtered, err = rw.referrersTag(ctx, repo, subject)
	}
	if err != nil {
		return Referrers{}, err
	}
	if artifactType != "" && !filtered {
		if b, err = filterReferrers(b, artifactType); err != nil {
			return Referrers{}, fmt.Errorf("%s: referrers of %s: %w", repo, subject, err)
		}
	}
	return Referrers{Bytes: b, Subject: subject, Filtered: artifactType != ""}, nil
}

// referrersTag reads the referrers tag schema's index, sha256-<hex>, as the
// referrers of subject; none means an empty list. It is never filtered.
func (rw *Rewriting) referrersTag(ctx context.Context, repo Repo, subject v1.Hash) ([]byte, bool, error) {
	m, err := rw.up.Manifest(ctx, repo, Ref{Tag: DigestTagPrefix + subject.Hex})
	if isNotFound(err) {
		return []byte(emptyReferrers), false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if m.MediaType != types.OCIImageIndex {
		// Some other manifest under that tag name: no referrers list.
		return []byte(emptyReferrers), false, nil
	}
	return m.Bytes, false, nil
}

// Referrers GETs the referrers API of repo for d. filtered reports whether
// the registry applied the artifactType filter (OCI-Filters-Applied). A
// list the registry pages (a Link header, rel="next") is read whole and
// answered as one index, so clients of the proxy see every referrer
// without following links that name the upstream.
func (u *Upstream) Referrers(ctx context.Context, repo Repo, d v1.Hash, artifactType string) (b []byte, filtered bool, err error) {
	target := u.url(repo, "referrers", d.String())
	if artifactType != "" {
		target += "?" + url.Values{"artifactType": {artifactType}}.Encode()
	}
	var pages referrerPages
	for target != "" {
		page, next, applied, err := u.referrersPage(ctx, repo, target)
		if err != nil {
			return nil, false, fmt.Errorf("%s: referrers of %s: %w", repo, d, err)
		}
		if err := pages.add(page, applied); err != nil {
			return nil, false, fmt.Errorf("%s: referrers of %s: %w", repo, d, err)
		}
		target = next
	}
	b, err = pages.index()
	if err != nil {
		return nil, false, fmt.Errorf("%s: referrers of %s: %w", repo, d, err)
	}
	return b, artifactType != "" && pages.filtered, nil
}

// referrersPage GETs one page of a referrers list, and the next page's URL
// when the registry says there is one.
func (u *Upstream) referrersPage(ctx context.Context, repo Repo, target string) (b []byte, next string, filtered bool, err error) {
	hdr := http.Header{"Accept": {string(ReferrersMediaType)}}
	resp, err := u.do(ctx, repo, http.MethodGet, target, hdr, http.StatusOK)
	if err != nil {
		return nil, "", false, err
	}
	defer resp.Body.Close()
	if b, err = readLimited(resp, MaxManifestSize); err != nil {
		return nil, "", false, err
	}
	base, err := url.Parse(target)
	if err != nil {
		return nil, "", false, err
	}
	if next, err = nextLink(base, resp.Header); err != nil {
		return nil, "", false, err
	}
	return b, next, filtersApplied(resp.Header, "artifactType"), nil
}

// filtersApplied reports whether the OCI-Filters-Applied header lists f.
func filtersApplied(h http.Header, f string) bool {
	for _, v := range h.Values("OCI-Filters-Applied") {
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == f {
				return true
			}
		}
	}
	return false
}

// filterReferrers keeps the descriptors of artifactType. The kept entries,
// and the values of the index's other fields, stay byte for byte as they
// were: a descriptor may carry fields this proxy does not know.
func filterReferrers(index []byte, artifactType string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(index, &top); err != nil {
		return nil, fmt.Errorf("decode referrers index: %w", err)
	}
	var entries []json.RawMessage
	if raw, ok := top["manifests"]; ok {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fmt.Errorf("decode referrers index manifests: %w", err)
		}
	}
	kept := []json.RawMessage{}
	for _, e := range entries {
		var d struct {
			ArtifactType string `json:"artifactType"`
		}
		if json.Unmarshal(e, &d) == nil && d.ArtifactType == artifactType {
			kept = append(kept, e)
		}
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return nil, err
	}
	top["manifests"] = b
	return json.Marshal(top)
}

// isNotFound reports whether err is an upstream 404.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
