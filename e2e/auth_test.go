package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	privateUser     = "e2e-user"
	privatePassword = "e2e-Pa55word"
)

// startPrivateUpstream starts a docker-registry with htpasswd auth that
// holds the busybox test image.
func startPrivateUpstream(tb testing.TB) (*upstream, *fixtures) {
	tb.Helper()
	fx := testImages(tb)
	u := startUpstreamAuth(tb, privateUser, privatePassword)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	auth := remote.WithAuth(&authn.Basic{Username: privateUser, Password: privatePassword})
	if err := remote.Write(u.tag(tb, repoBusybox), fx.Busybox, auth, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("push to the private upstream: %v", err)
	}
	return u, fx
}

// TestValidateCreds asks the daemon to check credentials against a real
// docker-registry with htpasswd auth.
func TestValidateCreds(t *testing.T) {
	u, _ := startPrivateUpstream(t)
	d := startDaemon(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name, user, password, registry string
		status                         int
		answer                         string
	}{
		{"right", privateUser, privatePassword, u.Host, 200, "true"},
		{"wrong password", privateUser, "not-it", u.Host, 200, "false"},
		{"unknown user", "mallory", privatePassword, u.Host, 200, "false"},
		{"unreachable registry", privateUser, privatePassword, unreachable, 502, ""},
		// The dial policy's refusal is a 403 that says so, not an outage.
		{"the daemon itself", privateUser, privatePassword, d.Addr, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := validateCreds(t, d, tt.user, tt.password, tt.registry)
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, got, tt.status)
			}
			if tt.answer != "" && string(got) != tt.answer {
				t.Errorf("answer %s, want %s", got, tt.answer)
			}
			if tt.answer == "" && !strings.Contains(string(got), tt.registry) {
				t.Errorf("the error does not name the registry: %s", got)
			}
			if tt.status == 403 && (!strings.Contains(string(got), "dial policy") || strings.Contains(string(got), "unavailable")) {
				t.Errorf("want the dial policy's refusal, not an unavailable upstream: %s", got)
			}
		})
	}
}

// validateCreds posts user:password for registry to the daemon's
// /validate-creds and returns the status and the JSON answer.
func validateCreds(tb testing.TB, d *towerreg, user, password, registry string) (int, json.RawMessage) {
	tb.Helper()
	body, _ := json.Marshal(map[string]string{"userName": user, "password": password, "registry": registry})
	resp, err := httpClient.Post(d.url("/validate-creds"), "application/json", strings.NewReader(string(body)))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var got json.RawMessage
	json.NewDecoder(resp.Body).Decode(&got)
	return resp.StatusCode, got
}

// TestProxyPrivateUpstream pulls an image of a registry with auth: with the
// credentials in the daemon's config (the password from an environment
// variable) the pull works; without them the client is told it is
// unauthorized.
func TestProxyPrivateUpstream(t *testing.T) {
	u, _ := startPrivateUpstream(t)
	sk := newSkopeo(t)

	cfg := filepath.Join(t.TempDir(), "config.yml")
	yml := "registries:\n  " + u.Host + ":\n    username: " + privateUser + "\n    password_env: E2E_REGISTRY_PASSWORD\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_REGISTRY_PASSWORD", privatePassword) // the daemon inherits it
	withCreds := startDaemon(t, "--config", cfg)
	dir := sk.copyToOCI(t, withCreds.ref(strings.Replace(u.Host, ":", "_", 1)+"/"+repoBusybox), false)
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Fatalf("skopeo copied nothing: %v", err)
	}

	anonymous := startDaemon(t)
	repo, _, _ := strings.Cut(repoBusybox, ":")
	resp, body := do(t, http.MethodGet, anonymous.url("/v2/"+strings.Replace(u.Host, ":", "_", 1)+"/"+repo+"/manifests/latest"))
	checkOCIError(t, http.MethodGet, resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	if strings.Contains(string(body), privatePassword) {
		t.Error("the password is in an error answer")
	}
}

// TestPublicListen serves a private upstream through --public-listen: an
// anonymous skopeo is refused with a challenge, `skopeo login` with the
// daemon's generated login lets it copy, the admin routes are not there,
// and the local handler pulls the same image without any login.
func TestPublicListen(t *testing.T) {
	u, _ := startPrivateUpstream(t)
	sk := newSkopeo(t)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	yml := "registries:\n  " + u.Host + ":\n    username: " + privateUser + "\n    password: " + privatePassword + "\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	pubAddr := freeAddr(t)
	d := startDaemon(t, "--config", cfg, "--public-listen", pubAddr)
	repo := strings.Replace(u.Host, ":", "_", 1) + "/" + repoBusybox
	pubRef := pubAddr + "/" + repo

	// The local handler: no login.
	sk.copyToOCI(t, d.ref(repo), false)

	// Anonymous on the public handler: refused, with a challenge.
	resp, _ := do(t, http.MethodGet, "http://"+pubAddr+"/v2/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Errorf("public /v2/ without a token: %s %q, want 401 with a Bearer challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	authFile := filepath.Join(t.TempDir(), "auth.json")
	_, errOut, err := runCmd(t, os.Environ(), sk.bin, "--insecure-policy", "inspect", "--retry-times=0", "--tls-verify=false", "--authfile", authFile, "docker://"+pubRef)
	if err == nil || !strings.Contains(strings.ToLower(errOut), "unauthorized") {
		t.Errorf("anonymous skopeo inspect on the public handler: %v\n%s", err, errOut)
	}

	// skopeo login with the daemon's generated login, then copy.
	pw, err := os.ReadFile(filepath.Join(d.stateDir(), "towerreg", "public-password"))
	if err != nil {
		t.Fatalf("the generated public password: %v", err)
	}
	out := mustRunStdin(t, strings.TrimSpace(string(pw)), sk.bin, "login", "--tls-verify=false", "--authfile", authFile,
		"-u", "towerreg", "--password-stdin", pubAddr)
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("skopeo login: %s", out)
	}
	mustRun(t, os.Environ(), sk.bin, "--insecure-policy", "copy", "--retry-times=0", "--src-tls-verify=false",
		"--src-authfile", authFile, "docker://"+pubRef, "oci:"+filepath.Join(t.TempDir(), "oci"))

	// A wrong password is refused at login.
	if _, errOut, err := runCmdStdin(t, "not-the-password", sk.bin, "login", "--tls-verify=false", "--authfile", filepath.Join(t.TempDir(), "a.json"),
		"-u", "towerreg", "--password-stdin", pubAddr); err == nil {
		t.Errorf("skopeo login with a wrong password succeeded: %s", errOut)
	}

	for _, p := range []string{"/validate-creds", "/container-token", "/_towerreg/status", "/_towerreg/events"} {
		resp, _ := do(t, http.MethodGet, "http://"+pubAddr+p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public GET %s: %s, want 404", p, resp.Status)
		}
	}
}
