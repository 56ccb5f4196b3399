package errcode

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name, method string
		errs         []Entry
		body         string
	}{
		{"one", http.MethodGet, []Entry{{Code: "DENIED", Message: "no"}},
			`{"errors":[{"code":"DENIED","message":"no"}]}`},
		{"detail, HTML escaped as encoding/json does", http.MethodGet, []Entry{{Code: "UNAUTHORIZED", Message: "run `docker login a<b>`", Detail: []string{"x"}}},
			`{"errors":[{"code":"UNAUTHORIZED","message":"run ` + "`docker login a\\u003cb\\u003e`" + `","detail":["x"]}]}`},
		{"head", http.MethodHead, []Entry{{Code: "DENIED", Message: "no"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Docker-Content-Digest", "sha256:aa")
			Write(rec, httptest.NewRequest(tt.method, "/v2/x/manifests/y", nil), http.StatusForbidden, tt.errs...)
			if rec.Code != http.StatusForbidden || rec.Body.String() != tt.body {
				t.Errorf("answer %d %q, want 403 %q", rec.Code, rec.Body, tt.body)
			}
			if got := rec.Header().Get("Docker-Content-Digest"); got != "" {
				t.Errorf("Docker-Content-Digest %q left on an error", got)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestShorten(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"short", 80, "short"},
		{"exactly", 7, "exactly"},
		{"one too long", 11, "one too lon…"},
		{"", 0, ""},
	}
	for _, tt := range tests {
		if got := Shorten(tt.s, tt.max); got != tt.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", tt.s, tt.max, got, tt.want)
		}
	}
}
