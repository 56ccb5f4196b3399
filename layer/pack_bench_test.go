package layer

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchTree fills dir with about total bytes of what a layer directory
// holds: compiled binaries (the Go toolchain's own, as found on the
// machine) and then source text (the Go tree's), copied in a fixed order,
// and returns the bytes written. Synthetic bytes would flatter one
// compressor or the other; these are the kinds of files a FUSE client's
// build puts in the layer.
func benchTree(tb testing.TB, dir string, total int64) int64 {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		tb.Skipf("go env GOROOT: %v", err)
	}
	root := strings.TrimSpace(string(out))
	var srcs []string
	for _, d := range []string{filepath.Join(root, "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH), filepath.Join(root, "bin"), filepath.Join(root, "src")} {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				srcs = append(srcs, p)
			}
			return nil
		})
	}
	var written int64
	for i, src := range srcs {
		if written >= total {
			break
		}
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		rel, _ := filepath.Rel(root, src)
		p := filepath.Join(dir, fmt.Sprintf("%d", i%8), rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			tb.Fatal(err)
		}
		written += int64(len(b))
	}
	if written < total {
		tb.Skipf("the Go tree at %s has only %d bytes to copy, want %d", root, written, total)
	}
	return written
}

// BenchmarkPackVsTarGzip packs one 100 MiB directory with Pack and with
// `tar -cf - DIR | gzip -1`, alternately in the same run, both to a sink,
// and reports the ratio of their median times (ours/theirs).
func BenchmarkPackVsTarGzip(b *testing.B) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		b.Skip("no sh")
	}
	for _, tool := range []string{"tar", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("no %s", tool)
		}
	}
	dir := b.TempDir()
	total := benchTree(b, dir, 100<<20)
	ours := func() time.Duration {
		start := time.Now()
		if _, err := Pack(b.Context(), os.DirFS(dir), io.Discard); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	theirs := func() time.Duration {
		start := time.Now()
		cmd := exec.CommandContext(b.Context(), sh, "-c", `tar -cf - -C "$1" . | gzip -1 >/dev/null`, "sh", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tar | gzip: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	ours() // the page cache, for both
	theirs()
	var o, t []time.Duration
	b.ResetTimer()
	for range b.N {
		o = append(o, ours())
		t = append(t, theirs())
	}
	b.StopTimer()
	mo, mt := median(o), median(t)
	b.ReportMetric(float64(total)/mo.Seconds()/(1<<20), "ours-MiB/s")
	b.ReportMetric(float64(total)/mt.Seconds()/(1<<20), "tar|gzip-1-MiB/s")
	b.ReportMetric(mo.Seconds()/mt.Seconds(), "ours/theirs")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
