// Package errcode writes the OCI distribution error answer, {"errors":
// [{code, message, detail}]}, for both handlers: api, which chooses the
// status and code of any error in one table, and public, whose login and
// challenge answers are its own. One writer, so that the two faces of the
// daemon answer alike to the same client.
package errcode

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Entry is one entry of the errors array.
type Entry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// Write answers r with status and errs as OCI error JSON. It drops a
// Docker-Content-Digest set before the failure (the answer is no longer
// that content), and sends no body to a HEAD.
func Write(w http.ResponseWriter, r *http.Request, status int, errs ...Entry) {
	body, _ := json.Marshal(struct {
		Errors []Entry `json:"errors"`
	}{errs})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Docker-Content-Digest")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// Shorten cuts s, a client's input that a message echoes, to its first
// max bytes and an ellipsis: a message names what it refused without
// carrying a whole request body back, or into the log.
func Shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
