package daemon_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/config"
)

// TestLocalHostAllowlist: the local handler serves requests whose Host is
// localhost, a loopback address, the --listen host or a name in
// local.hosts, with any port, and refuses any other with 421: a page
// whose name was rebound to 127.0.0.1 (evil.example:9090) reads neither
// the registry, nor the status, nor gets a container token.
func TestLocalHostAllowlist(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:9090"
	cfg.Local.Hosts = []string{"devbox.lan", "Build-Box:9090"}
	d := newDaemon(t, cfg)
	hosts := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:9090", true}, // docker pull 127.0.0.1:9090/...
		{"127.0.0.1", true},
		{"127.0.0.1:5555", true},
		{"127.0.0.2:9090", true},
		{"localhost:9090", true}, // docker pull localhost:9090/...
		{"localhost", true},
		{"LocalHost.:9090", true},
		{"[::1]:9090", true},
		{"[::ffff:127.0.0.1]:9090", true},
		{"devbox.lan:9090", true},
		{"devbox.lan", true},
		{"build-box:1234", true},
		{"evil.example:9090", false}, // DNS rebinding
		{"evil.example", false},
		{"127.0.0.1.nip.io:9090", false},
		{"localhost.evil.example:9090", false},
		{"devbox.lan.evil.example", false},
		{"192.168.1.10:9090", false},
		{"[::]:9090", false},
		{":9090", false},
	}
	routes := []struct {
		method, path, contentType string
		oci                       bool // refused with an OCI error, not plain text
	}{
		{"GET", "/v2/", "", true},
		{"GET", "/v2/library/busybox/manifests/no:such:tag", "", true}, // a 400 when allowed: no upstream request
		{"GET", "/_towerreg/status", "", false},
		{"POST", "/container-token", "application/json", false},
	}
	for _, h := range hosts {
		for _, rt := range routes {
			t.Run(h.host+" "+rt.method+" "+rt.path, func(t *testing.T) {
				req := httptest.NewRequest(rt.method, "http://127.0.0.1:9090"+rt.path, strings.NewReader("{}"))
				req.Host = h.host
				if rt.contentType != "" {
					req.Header.Set("Content-Type", rt.contentType)
				}
				rec := httptest.NewRecorder()
				d.Handler().ServeHTTP(rec, req)
				refused := rec.Code == http.StatusMisdirectedRequest
				if refused == h.ok {
					t.Fatalf("Host %q: %d %s; want allowed=%v", h.host, rec.Code, rec.Body, h.ok)
				}
				if !refused {
					return
				}
				var e struct{ Errors []struct{ Code string } }
				isOCI := json.Unmarshal(rec.Body.Bytes(), &e) == nil && len(e.Errors) == 1 && e.Errors[0].Code == "DENIED"
				if isOCI != rt.oci {
					t.Errorf("refusal %q (%s): OCI error %v, want %v", rec.Body, rec.Header().Get("Content-Type"), isOCI, rt.oci)
				}
			})
		}
	}
}
