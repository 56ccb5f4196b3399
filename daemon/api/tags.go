package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// tags passes tags/list through, with the repository name and the
// pagination Link rewritten to the name the client used, and the list
// paged as the spec says whatever the upstream did with the query.
func (h *Registry) tags(w http.ResponseWriter, r *http.Request, rt route) error {
	repo, err := rt.repo(h.defaultRegistry)
	if err != nil {
		return err
	}
	resp, err := h.tagSource.Tags(r.Context(), repo, r.URL.RawQuery)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 16<<20)).Decode(&list); err != nil {
		return fmt.Errorf("upstream tags list of %s: %w", repo, err)
	}
	page, next := pageTags(list.Tags, r.URL.Query())
	list.Name, list.Tags = rt.name, page
	body, err := json.Marshal(list)
	if err != nil {
		return err
	}
	switch link := resp.Header.Get("Link"); {
	case next != "":
		w.Header().Set("Link", "</v2/"+rt.name+"/tags/list?"+next+`>; rel="next"`)
	case link != "" && len(page) > 0: // an empty page (n=0) has no next
		w.Header().Set("Link", strings.Replace(link, "/v2/"+repo.Path+"/", "/v2/"+rt.name+"/", 1))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
	return nil
}

// pageTags is the page of tags that the query's n and last ask for: in
// lexical order, only those after last, at most n. next is the query of
// the following page when the list was cut here.
//
// An upstream that pages (distribution 3, Docker Hub, ggcr) has done so
// already, and this changes nothing; distribution 2.8 ignores n and last
// and lists in storage order, so that ?n=2&last=X would get the whole
// list back. Lexical is byte order, as distribution 3 and the OCI
// conformance suite compare tags.
func pageTags(tags []string, q url.Values) (page []string, next string) {
	page = slices.Sorted(slices.Values(tags))
	if last := q.Get("last"); last != "" {
		i, found := slices.BinarySearch(page, last)
		if found {
			i++
		}
		page = page[i:]
	}
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		// No n, or none that is a count: the upstream's answer to it
		// stands.
		return nonNil(page), ""
	}
	if len(page) <= n {
		return nonNil(page), ""
	}
	page = page[:n]
	if n == 0 {
		// The spec: n=0 is an empty list, with no Link.
		return []string{}, ""
	}
	return page, url.Values{"n": {strconv.Itoa(n)}, "last": {page[n-1]}}.Encode()
}

// nonNil keeps an empty list "[]" in JSON, never null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
