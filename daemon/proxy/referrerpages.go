package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// maxReferrerPages bounds how many pages of one referrers list are read:
// a registry that keeps answering rel="next" must not keep the proxy
// reading. The whole list is bounded by MaxManifestSize too.
const maxReferrerPages = 64

// referrerPages gathers the pages of one referrers list into one index.
type referrerPages struct {
	first    []byte                     // the first page, as it came
	top      map[string]json.RawMessage // the first page's fields
	entries  []json.RawMessage          // every page's descriptors
	size     int
	count    int
	filtered bool // every page says the filter was applied
}

func (p *referrerPages) add(page []byte, filtered bool) error {
	p.count++
	if p.count > maxReferrerPages {
		return fmt.Errorf("%w: over %d pages of referrers", ErrTooLarge, maxReferrerPages)
	}
	if p.size += len(page); p.size > MaxManifestSize {
		return fmt.Errorf("%w: referrers over %d bytes", ErrTooLarge, MaxManifestSize)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(page, &top); err != nil {
		return fmt.Errorf("%w: decode referrers page %d: %w", ErrBadAnswer, p.count, err)
	}
	var entries []json.RawMessage
	if raw, ok := top["manifests"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return fmt.Errorf("%w: decode referrers page %d manifests: %w", ErrBadAnswer, p.count, err)
		}
	}
	if p.count == 1 {
		p.first, p.top, p.filtered = page, top, filtered
	} else {
		p.filtered = p.filtered && filtered
	}
	p.entries = append(p.entries, entries...)
	return nil
}

// index is the whole list: the first page byte for byte when it was the
// only one, else the first page's fields with every page's descriptors.
func (p *referrerPages) index() ([]byte, error) {
	if p.count == 1 {
		return p.first, nil
	}
	all := p.entries
	if all == nil {
		all = []json.RawMessage{}
	}
	b, err := json.Marshal(all)
	if err != nil {
		return nil, err
	}
	p.top["manifests"] = b
	return json.Marshal(p.top)
}

// nextLink is the URL of the Link header's rel="next" target, resolved
// against the URL asked for (registries send a path), or "" when there is
// none. A next page elsewhere than the registry that answered is refused:
// a Link is the registry's word, and it must not send the proxy to
// another host.
func nextLink(base *url.URL, h http.Header) (string, error) {
	for _, v := range h.Values("Link") {
		for _, link := range strings.Split(v, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			if !ok || !isNextRel(params) {
				continue
			}
			target = strings.TrimSpace(target)
			if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				return "", fmt.Errorf("%w: malformed Link header %q", ErrBadAnswer, v)
			}
			ref, err := url.Parse(target[1 : len(target)-1])
			if err != nil {
				return "", fmt.Errorf("%w: malformed Link header %q: %w", ErrBadAnswer, v, err)
			}
			next := base.ResolveReference(ref)
			if next.Scheme != base.Scheme || next.Host != base.Host {
				return "", fmt.Errorf("%w: referrers Link to another registry (%s)", ErrBadAnswer, next.Redacted())
			}
			return next.String(), nil
		}
	}
	return "", nil
}

// isNextRel reports whether a Link's parameters hold rel="next" (or an
// unquoted rel=next).
func isNextRel(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "rel") {
			for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
				if strings.EqualFold(rel, "next") {
					return true
				}
			}
		}
	}
	return false
}
