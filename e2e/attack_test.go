package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublicAttacker plays an internet client with no login against the
// real binary's --public-listen, with real clients, as issue 12 found the
// public face: the developer's private image through the daemon's own
// listener, loopback ports by any spelling, and the default registry.
// Every one is refused before any upstream is asked, while a public
// registry listed for anonymous pulls still serves skopeo and crane with
// no login, and the login still works with skopeo, podman and crane.
func TestPublicAttacker(t *testing.T) {
	priv, _ := startPrivateUpstream(t)
	open, _ := startUpstreamWithImages(t)
	sk, cr := newSkopeo(t), newCrane(t)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	yml := "default_registry: " + priv.Host + "\n" +
		"registries:\n  " + priv.Host + ":\n    username: " + privateUser + "\n    password: " + privatePassword + "\n" +
		"public:\n  anonymous_registries: [docker.io, " + open.Host + "]\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	pubAddr := freeAddr(t)
	d := startDaemon(t, "--config", cfg, "--public-listen", pubAddr)
	under := func(hostport string) string { return strings.Replace(hostport, ":", "_", 1) }
	_, privPort, _ := net.SplitHostPort(priv.Host)
	_, localPort, _ := net.SplitHostPort(d.Addr)
	repo := strings.TrimSuffix(repoBusybox, ":latest")
	// The developer's own pull works, and puts the private image in the
	// store: the attacker must not get it from there either.
	sk.copyToOCI(t, d.ref(under(priv.Host)+"/"+repoBusybox), false)

	anonAuth := filepath.Join(t.TempDir(), "anon.json")
	for _, name := range []string{
		under(d.Addr) + "/" + under(priv.Host) + "/" + repo, // the daemon's own local handler
		"localhost_" + localPort + "/" + under(priv.Host) + "/" + repo,
		under(priv.Host) + "/" + repo,
		"localhost_" + privPort + "/" + repo,
		"[::1]_" + privPort + "/" + repo,
		"0.0.0.0_" + privPort + "/" + repo,
		"127.1_" + privPort + "/" + repo,
		"0177.0.0.1_" + privPort + "/" + repo,
		repo, // the default registry, which is private here
	} {
		t.Run(name, func(t *testing.T) {
			ref := pubAddr + "/" + name + ":latest"
			if strings.Contains(name, "[") {
				// No client takes brackets in a path: raw HTTP only.
				checkAnonymousRefused(t, pubAddr, name)
				return
			}
			_, errOut, err := runCmd(t, os.Environ(), sk.bin, "--insecure-policy", "copy", "--retry-times=0",
				"--src-tls-verify=false", "--src-authfile", anonAuth, "docker://"+ref, "oci:"+filepath.Join(t.TempDir(), "oci"))
			if err == nil {
				t.Fatalf("anonymous skopeo copy of %s succeeded", ref)
			}
			if low := strings.ToLower(errOut); !strings.Contains(low, "unauthorized") && !strings.Contains(low, "authentication required") {
				t.Errorf("anonymous skopeo copy of %s: %s, want unauthorized", ref, errOut)
			}
			checkAnonymousRefused(t, pubAddr, name)
		})
	}

	// A listed registry: anonymous skopeo and crane pull, with the layer.
	openRef := pubAddr + "/" + under(open.Host) + "/" + repoBusybox
	sk.copyToOCI(t, openRef, false, "--src-authfile", anonAuth)
	cr.validate(t, openRef)

	// The login works with skopeo, podman and crane, and then the private
	// registry is the developer's again.
	pw, err := os.ReadFile(filepath.Join(d.stateDir(), "towerreg", "public-password"))
	if err != nil {
		t.Fatalf("the generated public password: %v", err)
	}
	privRef := pubAddr + "/" + under(priv.Host) + "/" + repoBusybox
	authFile := filepath.Join(t.TempDir(), "auth.json")
	mustRunStdin(t, strings.TrimSpace(string(pw)), sk.bin, "login", "--tls-verify=false", "--authfile", authFile,
		"-u", "towerreg", "--password-stdin", pubAddr)
	sk.copyToOCI(t, privRef, false, "--src-authfile", authFile)

	craneHome := t.TempDir()
	craneEnv := append(os.Environ(), "DOCKER_CONFIG="+craneHome)
	if _, errOut, err := runCmdIn(t, craneEnv, strings.TrimSpace(string(pw)), cr.bin, "auth", "login", "--insecure", pubAddr, "-u", "towerreg", "--password-stdin"); err != nil {
		t.Fatalf("crane auth login: %v\n%s", err, errOut)
	}
	mustRun(t, craneEnv, cr.bin, "validate", "--insecure", "--remote", privRef)

	pm := newPodman(t)
	mustRunStdin(t, strings.TrimSpace(string(pw)), pm.bin, pm.args("login", "--tls-verify=false", "--authfile", authFile,
		"-u", "towerreg", "--password-stdin", pubAddr)...)
	mustRun(t, pm.env, pm.bin, pm.args("pull", "--tls-verify=false", "--authfile", authFile, privRef)...)
}

// checkAnonymousRefused asks for name's manifest and tags as an anonymous
// client: a 401 that says how to get access.
func checkAnonymousRefused(t *testing.T, pubAddr, name string) {
	t.Helper()
	for _, kind := range []string{"/manifests/latest", "/tags/list"} {
		resp, body := anonymous(t, "http://"+pubAddr+"/v2/"+name+kind)
		checkOCIError(t, "GET", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
		if !strings.Contains(string(body), "docker login") || !strings.Contains(string(body), "container token") {
			t.Errorf("%s: %s: the message does not say how to get access", kind, body)
		}
	}
}

// anonymous GETs url as a registry client does after the challenge, with
// the anonymous token.
func anonymous(tb testing.TB, url string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer anonymous")
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}
