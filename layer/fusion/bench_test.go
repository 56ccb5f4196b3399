package fusion

import (
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// BenchmarkSeqRead reads a 256 MiB object through the mount and with a
// direct GET from the same server, alternately, and reports the ratio of
// the medians (target ≤ 1.3).
//
//	go test ./layer/fusion -run '^$' -bench SeqRead -benchtime 5x
func BenchmarkSeqRead(b *testing.B) {
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "bench")
	const size = 256 << 20
	srv.WriteObject(b, bucket, "big.bin", randomBytes(5, size))
	m := mountOn(b, srv, nil, bucket)
	core := minio.Core{Client: srv.Client}
	buf := make([]byte, 1<<20)

	direct := func() time.Duration {
		start := time.Now()
		body, _, _, err := core.GetObject(b.Context(), bucket, "big.bin", minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, body, buf)
		body.Close()
		if err != nil || n != size {
			b.Fatalf("direct GET: %d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	mounted := func() time.Duration {
		start := time.Now()
		f, err := os.Open(m.path(bucket, "big.bin"))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, f, buf)
		f.Close()
		if err != nil || n != size {
			b.Fatalf("read through the mount: %d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	direct() // warm the server's page cache and the connection
	var ds, ms []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ds = append(ds, direct())
		ms = append(ms, mounted())
	}
	b.StopTimer()
	report(b, "read", ds, ms, size)
}

// BenchmarkList lists a prefix of 5,000 objects: `ls` (readdir) and
// `ls -l` (readdir and a stat of each) on a fresh mount, so nothing is
// cached, against a direct ListObjectsV2 loop (target ≤ 1.5).
//
//	go test ./layer/fusion -run '^$' -bench List -benchtime 5x
func BenchmarkList(b *testing.B) {
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "list")
	const n = 5000
	for i := range n {
		srv.WriteObject(b, bucket, fmt.Sprintf("p/obj-%05d", i), []byte("x"))
	}
	direct := func() time.Duration {
		start := time.Now()
		count := 0
		for obj := range srv.Client.ListObjects(b.Context(), bucket, minio.ListObjectsOptions{Prefix: "p/"}) {
			if obj.Err != nil {
				b.Fatal(obj.Err)
			}
			count++
		}
		if count != n {
			b.Fatalf("listed %d, want %d", count, n)
		}
		return time.Since(start)
	}
	ls := func(long bool) time.Duration {
		m := mountOn(b, srv, nil, bucket)
		start := time.Now()
		entries, err := os.ReadDir(m.path(bucket, "p"))
		if err != nil || len(entries) != n {
			b.Fatalf("readdir: %d entries, %v", len(entries), err)
		}
		if long {
			for _, e := range entries {
				if _, err := os.Lstat(m.path(bucket, "p", e.Name())); err != nil {
					b.Fatal(err)
				}
			}
		}
		return time.Since(start)
	}
	direct()
	var ds, short, long []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ds = append(ds, direct())
		short = append(short, ls(false))
		long = append(long, ls(true))
	}
	b.StopTimer()
	report(b, "ls", ds, short, 0)
	report(b, "ls-l", ds, long, 0)
}

// report logs the medians and reports their ratio as a metric.
func report(b *testing.B, what string, direct, mounted []time.Duration, size int64) {
	b.Helper()
	d, m := median(direct), median(mounted)
	ratio := float64(m) / float64(d)
	if size > 0 {
		b.Logf("%s: direct %v (%.0f MiB/s), mount %v (%.0f MiB/s), ratio %.2f", what,
			d, float64(size)/(1<<20)/d.Seconds(), m, float64(size)/(1<<20)/m.Seconds(), ratio)
	} else {
		b.Logf("%s: direct %v, mount %v, ratio %.2f", what, d, m, ratio)
	}
	b.ReportMetric(ratio, what+"-ratio")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
