package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// fusionRun runs image through podman with the given options before the
// image (devices, capabilities, variables), and returns its output and
// how long `podman run` took.
func (p *podman) fusionRun(tb testing.TB, opts []string, image string, args ...string) (stdout, stderr string, took time.Duration, err error) {
	tb.Helper()
	a := p.args("run", "--rm", "--quiet", "--tls-verify=false")
	a = append(append(a, opts...), image)
	start := time.Now()
	stdout, stderr, err = runCmd(tb, p.env, p.bin, append(a, args...)...)
	return stdout, stderr, time.Since(start), err
}

// envOpts turns KEY=VALUE pairs into podman -e options.
func envOpts(env ...string) []string {
	var out []string
	for _, kv := range env {
		out = append(out, "-e", kv)
	}
	return out
}

var fuseOpts = []string{"--device", "/dev/fuse", "--cap-add", "SYS_ADMIN"}

// TestFusionPodman: through the proxy, with no change to the images, the
// default layer's entry mounts the buckets at /fusion/s3/<bucket> in a
// busybox image, one with no shell (as distroless), one of glibc programs
// (as debian or ubuntu) and one of busybox and musl (as alpine), then runs
// the image's program.
func TestFusionPodman(t *testing.T) {
	s3test.NeedFUSE(t)
	pm := newPodman(t)
	srv := s3test.Start(t)
	u, _, d := startProxy(t)
	u.push(t, repoGlibc, glibcImage(t))
	u.push(t, repoMusl, muslImage(t))
	bucket := srv.Bucket(t, "data")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for key, body := range map[string]string{"hello.txt": "hello from S3\n", "dir/nested.txt": "nested\n"} {
		if _, err := srv.Client.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	env := srv.Env(bucket)
	busybox, noshell, glibc, musl := d.ref(repoBusybox), d.ref(repoNoShell), d.ref(repoGlibc), d.ref(repoMusl)
	// The no-shell image's program is `busybox echo`; to list with its
	// busybox, the entry is given the chain by hand (no shell involved).
	noshellLs := append([]string{"--entrypoint", "/.towerreg/entry", "-e", entryVar + `=["/bin/busybox"]`}, fuseOpts...)

	tests := []struct {
		name       string
		opts       []string
		image      string
		args       []string
		wantOut    []string // substrings of stdout
		wantErr    string   // substring of stderr, and a failure
		wantOutEq  string   // exact stdout, trimmed
		checkAfter func(t *testing.T)
	}{
		{name: "busybox ls -la", opts: append(fuseOpts, envOpts(env...)...), image: busybox,
			args: []string{"ls", "-la", "/fusion/s3/" + bucket}, wantOut: []string{"hello.txt", "dir", "14 "}},
		{name: "busybox cat", opts: append(fuseOpts, envOpts(env...)...), image: busybox,
			args: []string{"cat", "/fusion/s3/" + bucket + "/hello.txt", "/fusion/s3/" + bucket + "/dir/nested.txt"}, wantOutEq: "hello from S3\nnested"},
		{name: "busybox write", opts: append(fuseOpts, envOpts(env...)...), image: busybox,
			args:      []string{"sh", "-c", "echo written in a container > /fusion/s3/" + bucket + "/out.txt && cat /fusion/s3/" + bucket + "/out.txt"},
			wantOutEq: "written in a container",
			checkAfter: func(t *testing.T) {
				obj, err := srv.Client.GetObject(ctx, bucket, "out.txt", minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer obj.Close()
				st, err := obj.Stat()
				if err != nil || st.Size != int64(len("written in a container\n")) {
					t.Errorf("out.txt in S3: %+v, %v", st, err)
				}
			}},
		// Issue 17: dd exited 1 here, fsync failing with EOPNOTSUPP.
		{name: "busybox dd conv=fsync", opts: append(fuseOpts, envOpts(env...)...), image: busybox,
			args:      []string{"sh", "-c", "dd if=/dev/zero of=/fusion/s3/" + bucket + "/dd.bin bs=1048576 count=3 conv=fsync 2>/dev/null && echo synced"},
			wantOutEq: "synced",
			checkAfter: func(t *testing.T) {
				st, err := srv.Client.StatObject(ctx, bucket, "dd.bin", minio.StatObjectOptions{})
				if err != nil || st.Size != 3<<20 {
					t.Errorf("dd.bin in S3: %+v, %v; want %d bytes", st.Size, err, 3<<20)
				}
			}},
		{name: "noshell: its own program still runs", opts: append(fuseOpts, envOpts(env...)...), image: noshell, wantOutEq: noShellOutput},
		{name: "noshell ls -la", opts: append(noshellLs, envOpts(env...)...), image: noshell,
			args: []string{"ls", "-la", "/fusion/s3/" + bucket}, wantOut: []string{"hello.txt", "dir"}},
		{name: "noshell cat", opts: append(noshellLs, envOpts(env...)...), image: noshell,
			args: []string{"cat", "/fusion/s3/" + bucket + "/hello.txt"}, wantOutEq: "hello from S3"},
		{name: "glibc (as debian or ubuntu) ls -la", opts: append(fuseOpts, envOpts(env...)...), image: glibc,
			args: []string{"ls", "-la", "/fusion/s3/" + bucket}, wantOut: []string{"hello.txt", "dir", "14 "}},
		{name: "glibc: its Cmd, bash, reads the mount", opts: append(fuseOpts, envOpts(env...)...), image: glibc,
			args: []string{"bash", "-c", "cat /fusion/s3/" + bucket + "/hello.txt; echo \"bash $BASH_VERSION\""}, wantOut: []string{"hello from S3", "bash 5."}},
		{name: "musl (as alpine) ls -la", opts: append(fuseOpts, envOpts(env...)...), image: musl,
			args: []string{"ls", "-la", "/fusion/s3/" + bucket}, wantOut: []string{"hello.txt", "dir"}},
		{name: "musl: a dynamic musl program reads the mount", opts: append(fuseOpts, envOpts(env...)...), image: musl,
			args: []string{"mcat", "/fusion/s3/" + bucket + "/hello.txt", "/fusion/s3/" + bucket + "/dir/nested.txt"}, wantOutEq: "hello from S3\nnested"},
		{name: "without SYS_ADMIN", opts: append([]string{"--device", "/dev/fuse"}, envOpts(env...)...), image: busybox,
			args: []string{"echo", "must not run"}, wantErr: "is not permitted"},
		{name: "without /dev/fuse", opts: append([]string{"--cap-add", "SYS_ADMIN"}, envOpts(env...)...), image: busybox,
			args: []string{"echo", "must not run"}, wantErr: "cannot open /dev/fuse"},
		{name: "as a user other than root", opts: append(append([]string{"--user", "65534"}, fuseOpts...), envOpts(env...)...), image: busybox,
			args: []string{"echo", "must not run"}, wantErr: "the container runs as user 65534, and only root can mount FUSE here; run it with --user 0"},
		{name: "unknown bucket", opts: append(fuseOpts, envOpts(append(env, "NXF_FUSION_BUCKETS=no-such-bucket")...)...), image: busybox,
			args: []string{"echo", "must not run"}, wantErr: `bucket "no-such-bucket"`},
		{name: "wrong secret", opts: append(fuseOpts, envOpts(append(env, "AWS_SECRET_ACCESS_KEY=wrong")...)...), image: busybox,
			args: []string{"echo", "must not run"}, wantErr: "check AWS_SECRET_ACCESS_KEY"},
		{name: "unset: nothing but the chain", image: busybox,
			args: []string{"sh", "-c", "cat /" + fooPath + "; [ -e /fusion ] && echo mounted || echo no fusion"}, wantOutEq: fooContent + "\nno fusion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, _, err := pm.fusionRun(t, tt.opts, tt.image, tt.args...)
			if strings.Contains(out+errOut, s3test.SecretKey) {
				t.Errorf("the secret key was printed:\n%s\n%s", out, errOut)
			}
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("succeeded, want a failure with %q; stdout %q", tt.wantErr, out)
				}
				if strings.Contains(out, "must not run") {
					t.Error("the program ran on an empty mount point")
				}
				lines := strings.Split(strings.TrimSpace(errOut), "\n")
				if !strings.Contains(errOut, tt.wantErr) || len(lines) != 1 || !strings.HasPrefix(lines[0], "towerreg-entry: fusion: ") {
					t.Errorf("stderr %q, want one line with %q", errOut, tt.wantErr)
				}
				t.Logf("error line: %s", strings.TrimSpace(errOut))
				return
			}
			if err != nil {
				t.Fatalf("podman run: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tt.wantOutEq != "" && strings.TrimSpace(out) != tt.wantOutEq {
				t.Errorf("stdout %q, want %q", strings.TrimSpace(out), tt.wantOutEq)
			}
			if tt.checkAfter != nil {
				tt.checkAfter(t)
			}
		})
	}
}

var tookRE = regexp.MustCompile(`msg=mounted .* took=([0-9.]+[mµn]?s)`)

// TestFusionStartup reports the time from the entry's start to the mount
// being ready (the server's own figure), and what the mount adds to a
// whole `podman run` (median of 5 each).
func TestFusionStartup(t *testing.T) {
	s3test.NeedFUSE(t)
	pm := newPodman(t)
	srv := s3test.Start(t)
	_, _, d := startProxy(t)
	bucket := srv.Bucket(t, "startup")
	image := d.ref(repoBusybox)
	withFusion := append(fuseOpts, envOpts(append(srv.Env(bucket), "NXF_FUSION_LOG=info")...)...)
	// Pulled once before timing.
	if _, errOut, _, err := pm.fusionRun(t, nil, image, "echo"); err != nil {
		t.Fatalf("podman run: %v\n%s", err, errOut)
	}
	const runs = 5
	var mounts, plain, fused []time.Duration
	for range runs {
		_, _, took, err := pm.fusionRun(t, fuseOpts, image, "ls", "/")
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, took)
		_, errOut, took, err := pm.fusionRun(t, withFusion, image, "ls", "/fusion/s3/"+bucket)
		if err != nil {
			t.Fatalf("podman run: %v\n%s", err, errOut)
		}
		fused = append(fused, took)
		m := tookRE.FindStringSubmatch(errOut)
		if m == nil {
			t.Fatalf("no start-up figure in stderr:\n%s", errOut)
		}
		dur, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, dur)
	}
	t.Logf("mount ready after %v (median of %d; all %v)", median(mounts), runs, mounts)
	t.Logf("podman run: %v without the mount, %v with it (medians)", median(plain), median(fused))
	if median(mounts) > 300*time.Millisecond {
		t.Errorf("start-up %v, target < 300 ms", median(mounts))
	}
}
