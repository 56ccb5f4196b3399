package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/internal/tokenserver"
)

// ---------------------------------------------------------------------------
// A Bearer-token upstream: distribution with auth.token, as Docker Hub

const (
	tokenIssuer   = "e2e-token-issuer"
	tokenService  = "e2e-registry"
	tokenUser     = "e2e-token-user"
	tokenPassword = "e2e-T0ken-pass"
	// Anyone may pull under publicNS; privateNS needs the user.
	publicNS  = "public/"
	privateNS = "private/"
)

// authToken is distribution's auth.token block.
const authToken = `auth:
  token:
    realm: %q
    service: %q
    issuer: %q
    rootcertbundle: %q
`

// tokenUpstream is a docker-registry whose auth is a token server of the
// test's own, on another port, named in the challenge by realmHost.
type tokenUpstream struct {
	*upstream
	ts    *tokenserver.Server
	Realm string // http://realmHost:PORT/token
}

// startTokenUpstream starts the token server and the registry that trusts
// it. realmHost is how the registry's challenge names the token server:
// "localhost" or "127.0.0.1".
func startTokenUpstream(tb testing.TB, realmHost string) *tokenUpstream {
	tb.Helper()
	ts, err := tokenserver.New(tokenserver.Options{
		Issuer: tokenIssuer, Service: tokenService,
		Users:          map[string]string{tokenUser: tokenPassword},
		PublicPrefix:   publicNS,
		VerifierLeeway: tokenserver.DistributionLeeway,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.StripPrefix("/token", ts), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	realm := "http://" + net.JoinHostPort(realmHost, port) + "/token"

	bundle := filepath.Join(tb.TempDir(), "token-ca.pem")
	if err := os.WriteFile(bundle, ts.CertPEM(), 0o644); err != nil {
		tb.Fatal(err)
	}
	u := startRegistry(tb, fmt.Sprintf(authToken, realm, tokenService, tokenIssuer, bundle))
	return &tokenUpstream{upstream: u, ts: ts, Realm: realm}
}

// bearer sends one token on every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// push writes img to repo ("private/busybox:latest") with a token minted
// for it: ggcr's own realm check would refuse a realm on 127.0.0.1.
func (u *tokenUpstream) push(tb testing.TB, repo string, img v1.Image) {
	tb.Helper()
	name, _, _ := strings.Cut(repo, ":")
	tok, err := u.ts.Token(tokenUser, tokenserver.Access{Type: "repository", Name: name, Actions: []string{"pull", "push"}})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := remote.Write(u.tag(tb, repo), img, remote.WithContext(ctx), remote.WithTransport(bearer{tok})); err != nil {
		tb.Fatalf("push %s: %v", repo, err)
	}
}

// grants counts the tokens the realm issued to user ("" for anonymous)
// with pull on repository name, since index from.
func (u *tokenUpstream) grants(user, name string, from int) int {
	n := 0
	for _, g := range u.ts.Grants()[from:] {
		for _, a := range g.Access {
			if g.Subject == user && a.Type == "repository" && a.Name == name && strings.Contains(strings.Join(a.Actions, ","), "pull") {
				n++
			}
		}
	}
	return n
}

// credsConfig writes a daemon config with user:password for registry.
func credsConfig(tb testing.TB, registry, user, password string) string {
	tb.Helper()
	cfg := filepath.Join(tb.TempDir(), "config.yml")
	yml := "registries:\n  " + registry + ":\n    username: " + user + "\n    password: " + password + "\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// viaProxy is how the daemon names repo of registry host:port.
func viaProxy(host, repo string) string { return strings.Replace(host, ":", "_", 1) + "/" + repo }

// TestTokenAuthUpstream pulls through the daemon from distribution with
// auth.token, its realm named once by name and once by IP (which ggcr's
// realm check alone refuses): with the daemon's credentials, private and
// public; without, public only, and the private image is a 401 with a
// challenge and a message naming the registry; /validate-creds asks the
// token server.
func TestTokenAuthUpstream(t *testing.T) {
	fx := testImages(t)
	sk := newSkopeo(t)
	const (
		pub  = publicNS + "busybox:latest"
		priv = privateNS + "busybox:latest"
	)
	for _, realmHost := range []string{"localhost", "127.0.0.1"} {
		t.Run("realm "+realmHost, func(t *testing.T) {
			up := startTokenUpstream(t, realmHost)
			up.push(t, pub, fx.Busybox)
			up.push(t, priv, fx.Busybox)
			want := digestOf(t, fx.Busybox)
			t.Logf("realm %s", up.Realm)

			t.Run("with credentials", func(t *testing.T) {
				d := startDaemon(t, "--config", credsConfig(t, up.Host, tokenUser, tokenPassword))
				from := len(up.ts.Grants())
				for _, repo := range []string{priv, pub} {
					img := layoutImage(t, sk.copyToOCI(t, d.ref(viaProxy(up.Host, repo)), false))
					checkRewritten(t, img, fx.Busybox, want)
				}
				if n := up.grants(tokenUser, "private/busybox", from); n == 0 {
					t.Errorf("no token was issued to %s for private/busybox: %+v", tokenUser, up.ts.Grants()[from:])
				}
			})

			t.Run("anonymous", func(t *testing.T) {
				d := startDaemon(t)
				from := len(up.ts.Grants())
				img := layoutImage(t, sk.copyToOCI(t, d.ref(viaProxy(up.Host, pub)), false))
				checkRewritten(t, img, fx.Busybox, want)
				if n := up.grants("", "public/busybox", from); n == 0 {
					t.Errorf("no anonymous token was issued for public/busybox: %+v", up.ts.Grants()[from:])
				}

				resp, body := do(t, http.MethodGet, d.url("/v2/"+viaProxy(up.Host, "private/busybox")+"/manifests/latest"))
				checkOCIError(t, http.MethodGet, resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				for _, s := range []string{up.Host, "registries:", "docker login"} {
					if !strings.Contains(string(body), s) {
						t.Errorf("the 401's message does not say %q: %s", s, body)
					}
				}
				_, errOut, err := runCmd(t, os.Environ(), sk.bin, "--insecure-policy", "inspect", "--retry-times=0", "--tls-verify=false",
					"--authfile", filepath.Join(t.TempDir(), "auth.json"), "docker://"+d.ref(viaProxy(up.Host, priv)))
				if err == nil || !strings.Contains(errOut, up.Host) {
					t.Errorf("anonymous skopeo inspect of the private image: err %v, want an error naming %s:\n%s", err, up.Host, errOut)
				}
				t.Logf("skopeo says: %s", strings.TrimSpace(errOut))
			})

			// A client with the public login may reach the registry, which
			// the developer named; the realm, on a loopback port of the
			// registry's own choosing, only once it is named too.
			t.Run("logged in through the public listener", func(t *testing.T) {
				realm, err := url.Parse(up.Realm)
				if err != nil {
					t.Fatal(err)
				}
				creds := "registries:\n  " + up.Host + ":\n    username: " + tokenUser + "\n    password: " + tokenPassword + "\n"
				for _, named := range []bool{false, true} {
					yml := creds
					if named {
						yml += "  " + realm.Host + ": {}\n"
					}
					d, r := startPublic(t, yml, 0)
					auth := publicLoginAuth(t, d, r.Addr)
					ref := "docker://" + r.Addr + "/" + viaProxy(up.Host, priv)
					_, errOut, err := runCmd(t, os.Environ(), sk.bin, "--insecure-policy", "copy", "--retry-times=0", "--src-tls-verify=false",
						"--src-authfile", auth, ref, "oci:"+filepath.Join(t.TempDir(), "oci"))
					switch {
					case named && err != nil:
						t.Errorf("with the realm %s named: %v\n%s", realm.Host, err, errOut)
					case !named && (err == nil || !strings.Contains(errOut, "dial policy")):
						t.Errorf("with the realm %s not named: %v, want the dial policy's refusal:\n%s", realm.Host, err, errOut)
					}
				}
			})

			t.Run("validate-creds", func(t *testing.T) {
				d := startDaemon(t)
				for _, tc := range []struct {
					user, password, answer string
				}{
					{tokenUser, tokenPassword, "true"},
					{tokenUser, "not-it", "false"},
					{"mallory", tokenPassword, "false"},
				} {
					if status, got := validateCreds(t, d, tc.user, tc.password, up.Host); status != http.StatusOK || string(got) != tc.answer {
						t.Errorf("%s/%s: %d %s, want 200 %s", tc.user, tc.password, status, got, tc.answer)
					}
				}
			})
		})
	}
}

// checkRewritten checks that img is orig with the daemon's layer appended:
// orig's layers first, and a manifest digest that is not orig's.
func checkRewritten(tb testing.TB, img, orig v1.Image, origDigest v1.Hash) {
	tb.Helper()
	if err := validate.Image(img); err != nil {
		tb.Fatalf("the pulled image does not validate: %v", err)
	}
	got, base := layerDigests(tb, img), layerDigests(tb, orig)
	if len(got) != len(base)+1 {
		tb.Fatalf("%d layers, want the %d of the image and the daemon's", len(got), len(base))
	}
	for i := range base {
		if got[i] != base[i] {
			tb.Errorf("layer %d is %s, want the image's %s", i, got[i], base[i])
		}
	}
	if digestOf(tb, img) == origDigest {
		tb.Error("the pulled image is the upstream's, not rewritten")
	}
}

// TestTokenAuthExpiresMidPull: the registry refuses the daemon's token
// part-way through a pull, and the daemon gets a new one and the pull goes
// on. Tokens live 2-3 s (whole seconds); the image's three 4 MiB layers
// come through a relay held to 1 MiB/s, and crane's tarball pull fetches
// them one after the other, so each layer after the first is asked for
// with a token that has expired. A token good for 2 s leaves the daemon's
// retry after a refresh time to spare on a loaded machine.
func TestTokenAuthExpiresMidPull(t *testing.T) {
	cr := newCrane(t)
	up := startTokenUpstream(t, "127.0.0.1")
	const repo = privateNS + "big:latest"
	img := bigImage(t, 3, 12<<20, 14)
	up.push(t, repo, img)
	slow := startRelay(t, up.Host, 1<<20)
	d := startDaemon(t, "--config", credsConfig(t, slow.Addr, tokenUser, tokenPassword))

	const lifetime = 2 * time.Second
	up.ts.SetLifetime(lifetime)
	from := len(up.ts.Grants())
	out := filepath.Join(t.TempDir(), "big.tar")
	start := time.Now()
	mustRun(t, os.Environ(), cr.bin, "pull", "--insecure", d.ref(viaProxy(slow.Addr, repo)), out)
	took := time.Since(start)

	pulled, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRewritten(t, pulled, img, digestOf(t, img))
	n := up.grants(tokenUser, "private/big", from)
	t.Logf("pull took %v; the daemon was issued %d tokens living %v", took.Round(time.Millisecond), n, lifetime)
	// One token for the manifest; the second and third layers each start
	// 4 s or more after the one before, later than a token lives.
	if n < 2 {
		t.Errorf("%d token(s) for the pull: the daemon never asked again, so no token expired under it", n)
	}
	if took < 3*lifetime {
		t.Errorf("the pull took %v, less than the tokens' lifetime: the test proves nothing", took)
	}
}
