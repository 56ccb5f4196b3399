package fusion

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/internal/s3test"
)

// peer is a FUSE client for S3 that mounts one bucket on a new directory
// and returns it, with the unmount.
type peer struct {
	name  string
	mount func(b *testing.B, srv *s3test.Server, bucket string) (string, func())
}

// BenchmarkPeers measures the workloads of issue 17 with this client and
// with the mounts a user would otherwise use (s3fs, rclone with and
// without its cache, from Debian: `make bench-peers` installs them), each
// against the same work done with direct S3 requests, the clients
// interleaved, a new mount for every measurement. The table it logs is
// the README's; each cell is the median time over the direct requests'.
//
//	go test ./layer/fusion -run '^$' -bench Peers -benchtime 3x
func BenchmarkPeers(b *testing.B) {
	s3test.NeedFUSE(b)
	for _, tool := range []string{"s3fs", "rclone", "fusermount3"} {
		prereq.Tool(b, tool, "make bench-peers (apt-get install s3fs rclone fuse3)")
	}
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "peers")
	const size, keys, small = 256 << 20, 5000, 500
	data := randomBytes(11, size)
	srv.WriteObject(b, bucket, "big.bin", data)
	for i := range keys {
		srv.WriteObject(b, bucket, fmt.Sprintf("list/k%05d", i), []byte("x"))
	}
	smallData := randomBytes(12, 4<<10)
	for i := range small {
		srv.WriteObject(b, bucket, fmt.Sprintf("small/f%03d", i), smallData)
	}
	peers := []peer{
		{"tower-reg", func(b *testing.B, srv *s3test.Server, bucket string) (string, func()) {
			m, unmount := mountNow(b, srv, nil, bucket)
			return m.path(bucket), unmount
		}},
		{"s3fs", mountS3fs},
		{"rclone off", rcloneMount("off")},
		{"rclone full", rcloneMount("full")},
	}
	buf := make([]byte, 1<<20)
	readAllFiles := func(dir string) {
		for i := range small {
			got, err := os.ReadFile(filepath.Join(dir, "small", fmt.Sprintf("f%03d", i)))
			if err != nil || !bytes.Equal(got, smallData) {
				b.Fatalf("small file %d: %d bytes, %v", i, len(got), err)
			}
		}
	}
	lsl := func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			if _, err := os.Lstat(filepath.Join(dir, e.Name())); err != nil {
				b.Fatal(err)
			}
		}
	}
	workloads := []struct {
		name, metric string
		direct       func()
		mount        func(dir string)
	}{
		{"sequential read, 256 MiB", "read", func() {
			timedRead(b, getter(b, minio.Core{Client: srv.Client}, bucket, "big.bin"), size, buf)
		}, func(dir string) { timedRead(b, opener(filepath.Join(dir, "big.bin")), size, buf) }},
		{"`ls` of 5,000 keys", "ls", func() { listAll(b, srv, bucket, "list/", keys) }, func(dir string) {
			if entries, err := os.ReadDir(filepath.Join(dir, "list")); err != nil || len(entries) != keys {
				b.Fatalf("ls: %d entries, %v", len(entries), err)
			}
		}},
		{"`ls -l` of 5,000 keys", "ls-l", func() { listAll(b, srv, bucket, "list/", keys) }, func(dir string) { lsl(filepath.Join(dir, "list")) }},
		{"500 × 4 KiB files, cold mount", "small-cold", func() { getSmall(b, srv, bucket, small) }, readAllFiles},
		{"500 × 4 KiB files, after `ls -l`", "small-warm", func() { getSmall(b, srv, bucket, small) }, func(dir string) {
			lsl(filepath.Join(dir, "small"))
			readAllFiles(dir)
		}},
		{"write 256 MiB, until visible in S3", "write", func() {
			if _, err := srv.Client.PutObject(b.Context(), bucket, "direct.bin", bytes.NewReader(data), size, minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}, func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, "written.bin"), data, 0o644); err != nil {
				b.Fatal(err)
			}
			waitVisible(b, srv, bucket, "written.bin", size)
		}},
	}
	times := map[string][]time.Duration{}
	timed := func(key string, f func()) {
		start := time.Now()
		f()
		times[key] = append(times[key], time.Since(start))
	}
	b.ResetTimer()
	for b.Loop() {
		for _, w := range workloads {
			timed(w.name+"/direct", w.direct)
			for _, p := range peers {
				dir, unmount := p.mount(b, srv, bucket)
				timed(w.name+"/"+p.name, func() { w.mount(dir) })
				unmount()
				if _, err := srv.Client.StatObject(b.Context(), bucket, "written.bin", minio.StatObjectOptions{}); err == nil {
					if err := srv.Client.RemoveObject(b.Context(), bucket, "written.bin", minio.RemoveObjectOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.StopTimer()
	var table strings.Builder
	table.WriteString("| workload (median, × direct S3 requests) |")
	for _, p := range peers {
		table.WriteString(" " + p.name + " |")
	}
	table.WriteString("\n|---|" + strings.Repeat("---|", len(peers)) + "\n")
	for _, w := range workloads {
		d := median(times[w.name+"/direct"])
		fmt.Fprintf(&table, "| %s |", w.name)
		for _, p := range peers {
			ratio := float64(median(times[w.name+"/"+p.name])) / float64(d)
			fmt.Fprintf(&table, " %.2f |", ratio)
			b.ReportMetric(ratio, strings.ReplaceAll(p.name, " ", "-")+"-"+w.metric+"-ratio")
		}
		table.WriteString("\n")
	}
	b.Logf("%d rounds, each a median over the direct requests' median:\n%s", len(times[workloads[0].name+"/direct"]), table.String())
}

func listAll(b *testing.B, srv *s3test.Server, bucket, prefix string, want int) {
	n := 0
	for obj := range srv.Client.ListObjects(b.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			b.Fatal(obj.Err)
		}
		n++
	}
	if n != want {
		b.Fatalf("listed %d, want %d", n, want)
	}
}

func getSmall(b *testing.B, srv *s3test.Server, bucket string, n int) {
	for i := range n {
		getObject(b, srv, bucket, fmt.Sprintf("small/f%03d", i))
	}
}

// waitVisible waits until S3 has key at size: rclone's cache uploads
// after close.
func waitVisible(b *testing.B, srv *s3test.Server, bucket, key string, size int64) {
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		info, err := srv.Client.StatObject(b.Context(), bucket, key, minio.StatObjectOptions{})
		if err == nil && info.Size == size {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not in S3 after 5 minutes: %v", key, err)
		}
	}
}

// mountS3fs mounts with s3fs-fuse in the foreground, path-style.
func mountS3fs(b *testing.B, srv *s3test.Server, bucket string) (string, func()) {
	dir := b.TempDir()
	passwd := filepath.Join(b.TempDir(), "passwd")
	if err := os.WriteFile(passwd, []byte(s3test.AccessKey+":"+s3test.SecretKey+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return dir, runMount(b, dir, "s3fs", bucket, dir, "-f", "-o", "url="+srv.URL+",use_path_request_style,passwd_file="+passwd)
}

// rcloneMount mounts with rclone, its VFS cache in mode.
func rcloneMount(mode string) func(*testing.B, *s3test.Server, string) (string, func()) {
	return func(b *testing.B, srv *s3test.Server, bucket string) (string, func()) {
		dir := b.TempDir()
		return dir, runMount(b, dir, "rclone", "mount", ":s3:"+bucket, dir, "--config", "/dev/null",
			"--s3-provider", "Other", "--s3-endpoint", srv.URL, "--s3-force-path-style",
			"--s3-access-key-id", s3test.AccessKey, "--s3-secret-access-key", s3test.SecretKey,
			"--vfs-cache-mode", mode, "--cache-dir", b.TempDir())
	}
}

// runMount starts a mounting program and waits until dir is a mount
// point; the func it returns unmounts and waits for the program.
func runMount(b *testing.B, dir, name string, args ...string) func() {
	cmd := exec.Command(name, args...)
	// Credentials and endpoint come from the flags alone: an AWS_*
	// variable of the caller (AWS_CA_BUNDLE fails rclone on plain HTTP)
	// must not change what is measured.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	parent, err := devOf(filepath.Dir(dir))
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if d, err := devOf(dir); err == nil && d != parent {
			break
		}
		select {
		case err := <-exited:
			b.Fatalf("%s exited before it mounted (%v):\n%s", name, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("%s did not mount %s in 30 s:\n%s", name, dir, out.String())
		}
	}
	return func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
}

func devOf(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
}
