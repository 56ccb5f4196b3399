package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// tags passes tags/list through, with the repository name and the
// pagination Link rewritten to the name the client used.
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
	if list.Tags == nil {
		list.Tags = []string{}
	}
	list.Name = rt.name
	body, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if link := resp.Header.Get("Link"); link != "" {
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
