package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// The images of the USER tests: busybox with a passwd and a group file in
// which user 1000 (app) is also in group 2000 (extra).
const (
	repoUser   = "test/user:latest"   // USER 1000
	repoNoUser = "test/nouser:latest" // the same files, no USER
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	testGroup  = "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"
)

// capSysAdmin is CAP_SYS_ADMIN's bit in the Cap* lines of /proc/self/status.
const capSysAdmin = 21

// userImage is busybox (sh, id, grep, ls, cat, echo), /etc/passwd and
// /etc/group, running as user.
func userImage(tb testing.TB, user string) v1.Image {
	tb.Helper()
	bb := need(tb, "busybox")
	entries := fileEntries(tb, bb)
	for _, applet := range []string{"sh", "id", "grep", "ls", "cat", "echo"} {
		entries = append(entries, tarEntry{Name: "bin/" + applet, Mode: 0o777, Link: bb})
	}
	entries = append(entries,
		tarEntry{Name: "etc", Mode: 0o755, Dir: true},
		tarEntry{Name: "etc/passwd", Mode: 0o644, Body: []byte(testPasswd)},
		tarEntry{Name: "etc/group", Mode: 0o644, Body: []byte(testGroup)},
	)
	l, err := tarLayer(types.OCILayer, entries...)
	if err != nil {
		tb.Fatal(err)
	}
	img, err := newImage(types.OCIManifestSchema1, amd64, v1.Config{Cmd: []string{"sh"}, Env: []string{pathEnv}, User: user}, l)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// whoScript prints who the program is and two capability sets; with a
// bucket, it also lists, reads and writes the bucket's mount.
func whoScript(bucket string) string {
	s := `echo "uid=$(id -u)"; echo "groups=$(id -G)"; grep -E '^Cap(Bnd|Eff):' /proc/self/status`
	if bucket != "" {
		dir := "/fusion/s3/" + bucket
		s += `; ls ` + dir + `; cat ` + dir + `/hello.txt; echo "from $(id -u)" > ` + dir + `/out-$(id -u).txt && echo wrote`
	}
	return s
}

// who is what whoScript printed.
type who struct {
	uid, groups    string
	capBnd, capEff uint64
	rest           []string
}

func parseWho(tb testing.TB, out string) who {
	tb.Helper()
	var w who
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch {
		case k == "uid":
			w.uid = v
		case k == "groups":
			w.groups = v
		case strings.HasPrefix(line, "CapBnd:"), strings.HasPrefix(line, "CapEff:"):
			n, err := strconv.ParseUint(strings.TrimSpace(line[len("CapBnd:"):]), 16, 64)
			if err != nil {
				tb.Fatalf("%q: %v", line, err)
			}
			if strings.HasPrefix(line, "CapBnd:") {
				w.capBnd = n
			} else {
				w.capEff = n
			}
		default:
			w.rest = append(w.rest, line)
		}
	}
	if w.uid == "" || w.capBnd == 0 {
		tb.Fatalf("the script printed no uid or CapBnd:\n%s", out)
	}
	return w
}

func hasAdmin(set uint64) bool { return set&(1<<capSysAdmin) != 0 }

// TestFusionUser: an image with USER 1000, pulled through the proxy and run
// with the FUSE options, runs as uid 1000 with the groups it has without the
// proxy, without CAP_SYS_ADMIN in its bounding set, and reads, lists and
// writes /fusion/s3/<bucket>; an image without USER runs as root, also
// without CAP_SYS_ADMIN. Without a mount, both run as they do without the
// proxy, capabilities included.
func TestFusionUser(t *testing.T) {
	s3test.NeedFUSE(t)
	pm := newPodman(t)
	srv := s3test.Start(t)
	u, _, d := startProxy(t)
	u.push(t, repoUser, userImage(t, "1000"))
	u.push(t, repoNoUser, userImage(t, ""))
	bucket := srv.Bucket(t, "users")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := "hello from S3\n"
	if _, err := srv.Client.PutObject(ctx, bucket, "hello.txt", strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	mountOpts := append(append([]string{}, fuseOpts...), envOpts(srv.Env(bucket)...)...)

	run := func(t *testing.T, opts []string, image, script string) who {
		t.Helper()
		out, errOut, _, err := pm.fusionRun(t, opts, image, "sh", "-c", script)
		if err != nil {
			t.Fatalf("podman run %s: %v\nstdout:\n%s\nstderr:\n%s", image, err, out, errOut)
		}
		return parseWho(t, out)
	}
	// The baseline: the same images straight from the upstream, with the
	// same capabilities given, as the runtime runs them.
	directUser := run(t, fuseOpts, u.ref(repoUser), whoScript(""))
	directRoot := run(t, fuseOpts, u.ref(repoNoUser), whoScript(""))
	t.Logf("without the proxy: USER 1000 %+v; no USER %+v", directUser, directRoot)
	if directUser.uid != "1000" || directUser.groups == "" || !hasAdmin(directUser.capBnd) {
		t.Fatalf("baseline of USER 1000: %+v", directUser)
	}

	tests := []struct {
		name      string
		opts      []string
		image     string
		bucket    string
		want      who // uid, groups and capBnd/capEff compared
		wantAdmin bool
		// noEff: the program has no effective capabilities. Podman gives
		// a non-root USER its --cap-add capabilities as ambient ones;
		// through the proxy the entry starts as root and its setuid
		// clears them, as Docker, which gives none, would have it.
		noEff bool
	}{
		{name: "USER 1000, mounted", opts: mountOpts, image: d.ref(repoUser), bucket: bucket, want: directUser, noEff: true},
		{name: "no USER, mounted", opts: mountOpts, image: d.ref(repoNoUser), bucket: bucket, want: directRoot},
		{name: "USER 1000, no mount: as without the proxy", opts: fuseOpts, image: d.ref(repoUser), want: directUser, wantAdmin: true, noEff: true},
		{name: "no USER, no mount: as without the proxy", opts: fuseOpts, image: d.ref(repoNoUser), want: directRoot, wantAdmin: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, tt.opts, tt.image, whoScript(tt.bucket))
			t.Logf("uid=%s groups=%s CapBnd=%016x CapEff=%016x", got.uid, got.groups, got.capBnd, got.capEff)
			if got.uid != tt.want.uid || got.groups != tt.want.groups {
				t.Errorf("uid=%s groups=%s, want uid=%s groups=%s (as without the proxy)", got.uid, got.groups, tt.want.uid, tt.want.groups)
			}
			if hasAdmin(got.capBnd) != tt.wantAdmin {
				t.Errorf("CAP_SYS_ADMIN in the bounding set (%016x): %v, want %v", got.capBnd, hasAdmin(got.capBnd), tt.wantAdmin)
			}
			// Only CAP_SYS_ADMIN goes, and only with a mount: the rest
			// is the runtime's.
			wantBnd, wantEff := tt.want.capBnd, tt.want.capEff
			if !tt.wantAdmin {
				wantBnd &^= 1 << capSysAdmin
				wantEff &^= 1 << capSysAdmin
			}
			if tt.noEff {
				wantEff = 0
			}
			if got.capBnd != wantBnd || got.capEff != wantEff {
				t.Errorf("CapBnd %016x CapEff %016x, want %016x %016x", got.capBnd, got.capEff, wantBnd, wantEff)
			}
			if tt.bucket == "" {
				return
			}
			rest := strings.Join(got.rest, "\n")
			for _, w := range []string{"hello.txt", "hello from S3", "wrote"} {
				if !strings.Contains(rest, w) {
					t.Errorf("the mount: output lacks %q:\n%s", w, rest)
				}
			}
		})
	}
}
