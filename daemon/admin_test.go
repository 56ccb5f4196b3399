package daemon_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// authRegistry is a registry that takes only user:pass, by Basic auth or
// by a Bearer token from its own realm.
func authRegistry(t *testing.T, scheme, user, pass string) *httptest.Server {
	t.Helper()
	reg := registry.New(registry.Logger(quiet))
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, basicOK := r.BasicAuth()
		basicOK = basicOK && u == user && p == pass
		switch {
		case scheme == "Bearer" && r.URL.Path == "/token":
			if !basicOK {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, `{"token":"tok"}`)
			return
		case scheme == "Bearer" && r.Header.Get("Authorization") == "Bearer tok",
			scheme == "Basic" && basicOK:
			reg.ServeHTTP(w, r)
			return
		}
		if scheme == "Bearer" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, srv.URL))
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestValidateCreds(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet))) // an open registry
	bearer := authRegistry(t, "Bearer", "alice", "s3cret")
	basic := authRegistry(t, "Basic", "bob", "hunter2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed
	ln.Close()

	creds := func(user, pass, reg string) string {
		b, _ := json.Marshal(map[string]string{"userName": user, "password": pass, "registry": reg})
		return string(b)
	}
	tests := []struct {
		name   string
		body   string
		status int
		want   string // the body, or a substring of the error message
	}{
		{"bearer, right", creds("alice", "s3cret", host(bearer)), 200, "true"},
		{"bearer, wrong password", creds("alice", "nope", host(bearer)), 200, "false"},
		{"basic, right", creds("bob", "hunter2", host(basic)), 200, "true"},
		{"basic, wrong user", creds("eve", "hunter2", host(basic)), 200, "false"},
		{"open registry", creds("anyone", "x", host(e.upstream)), 200, "true"},
		{"unreachable", creds("alice", "s3cret", closed), 502, closed},
		{"bad registry name", creds("alice", "s3cret", "Not A Host"), 400, "not a registry host"},
		{"missing fields", `{"password":"x"}`, 400, "missing userName, registry"},
		{"not JSON", `userName=alice`, 400, "not the expected JSON"},
		{"unknown field", `{"userName":"a","registry":"r.io","token":"x"}`, 400, "unknown field"},
		{"two values", creds("a", "b", "r.io") + `{}`, 400, "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(e.proxy.URL+"/validate-creds", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status == 200 {
				if got := strings.TrimSpace(string(b)); got != tt.want {
					t.Fatalf("answer %s, want %s", got, tt.want)
				}
				return
			}
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &body); err != nil || len(body.Errors) != 1 {
				t.Fatalf("error body %s: %v", b, err)
			}
			if !strings.Contains(body.Errors[0].Message, tt.want) {
				t.Errorf("message %q lacks %q", body.Errors[0].Message, tt.want)
			}
			if strings.Contains(string(b), "s3cret") {
				t.Errorf("the password is in the answer: %s", b)
			}
		})
	}
	resp, err := http.Get(e.proxy.URL + "/validate-creds")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /validate-creds: %d, want 405", resp.StatusCode)
	}
}

// TestStatusAndEvents pulls an image while a client follows the event
// stream, then reads the status.
func TestStatusAndEvents(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	e.push(t, "test/img", "latest", base)

	resp, err := http.Get(e.proxy.URL + "/_towerreg/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	kinds := make(chan string, 100)
	go func() {
		defer close(kinds)
		sc := bufio.NewScanner(resp.Body)
		var kind string
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "event: "); ok {
				kind = k
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				ev, err := event.Decode(kind, []byte(data))
				if err != nil {
					kinds <- "undecodable " + kind + ": " + err.Error()
					continue
				}
				switch ev := ev.(type) {
				case event.ManifestServed:
					kinds <- kind + " " + ev.Reference
				default:
					kinds <- kind
				}
			}
		}
	}()

	img, err := remote.Image(mustRef(t, e.through("test/img")+":latest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"ManifestServed latest": false, "BlobServed": false}
	timeout := time.After(10 * time.Second)
	for missing := len(want); missing > 0; {
		select {
		case k, ok := <-kinds:
			if !ok {
				t.Fatal("the event stream ended")
			}
			if strings.HasPrefix(k, "undecodable") {
				t.Fatal(k)
			}
			if seen, ok := want[k]; ok && !seen {
				want[k] = true
				missing--
			}
		case <-timeout:
			t.Fatalf("events seen: %v", want)
		}
	}

	sresp, err := http.Get(e.proxy.URL + "/_towerreg/status")
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(sresp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	gen := e.d.Generation()
	if st.Layer.GzipDigest != gen.Set.Common.GzipDigest.String() || st.Layer.Generation != gen.Number {
		t.Errorf("status layer %+v, want generation %d %s", st.Layer, gen.Number, gen.Set.Common.GzipDigest)
	}
	if st.Counts.Pulls != 1 || st.Counts.Blobs == 0 || st.Counts.Bytes == 0 {
		t.Errorf("counts %+v after one pull", st.Counts)
	}
	if st.Version == "" || st.Started.IsZero() {
		t.Errorf("status %+v", st)
	}
}
