package fusion

import (
	"bytes"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// connRate is what real S3 serves one connection, about: the throttled
// relay holds every connection, each way, to it.
const connRate = 50 << 20

// BenchmarkThrottled reads and writes 256 MiB through the mount with S3
// behind a relay that holds each connection to 50 MiB/s, as real S3 does,
// against one GET and one PUT on one connection through the same relay,
// alternately. It reports how many times faster the mount is (goal ≥ 4
// for the read) and the peak of the Go heap while the mount transfers,
// over what it was before (the client runs in the test's process).
//
//	go test ./layer/fusion -run '^$' -bench Throttled -benchtime 3x
func BenchmarkThrottled(b *testing.B) {
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "throttled")
	const size = 256 << 20
	data := randomBytes(7, size)
	srv.WriteObject(b, bucket, "big.bin", data)
	relay := srv.Throttle(b, connRate)
	env := map[string]string{"AWS_ENDPOINT_URL": relay.URL}
	// To compare settings: NXF_FUSION_READ_STREAMS=4 go test -bench ...
	for _, name := range []string{ReadStreamsEnv, ReadPartEnv, UploadStreamsEnv, UploadPartEnv} {
		if v := os.Getenv(name); v != "" {
			env[name] = v
			b.Logf("%s=%s", name, v)
		}
	}
	m := mountOn(b, srv, env, bucket)
	core := minio.Core{Client: relay.Client(b)}
	buf := make([]byte, 1<<20)
	var readPeak, writePeak heapPeak

	singleGet := func() time.Duration {
		return timedRead(b, "single GET", getter(b.Context(), core, bucket, "big.bin"), size, buf)
	}
	singlePut := func() time.Duration {
		start := time.Now()
		// One PUT, one connection: no multipart.
		_, err := core.PutObject(b.Context(), bucket, "put.bin", bytes.NewReader(data), size, "", "", minio.PutObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	mountRead := func() time.Duration {
		defer readPeak.watch()()
		return timedRead(b, "mount", opener(m.path(bucket, "big.bin")), size, buf)
	}
	mountWrite := func() time.Duration {
		defer writePeak.watch()()
		start := time.Now()
		f, err := os.OpenFile(m.path(bucket, "written.bin"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		for rest := data; len(rest) > 0; rest = rest[min(len(rest), len(buf)):] {
			if _, err := f.Write(rest[:min(len(rest), len(buf))]); err != nil {
				b.Fatalf("write: %v", err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatalf("close: %v", err)
		}
		return time.Since(start)
	}
	var gets, reads, puts, writes []time.Duration
	b.ResetTimer()
	for b.Loop() {
		gets = append(gets, singleGet())
		reads = append(reads, mountRead())
		puts = append(puts, singlePut())
		writes = append(writes, mountWrite())
	}
	b.StopTimer()
	if got := getObject(b, srv, bucket, "written.bin"); !bytes.Equal(got, data) {
		b.Fatalf("S3 has %d bytes of written.bin, want the %d written", len(got), size)
	}
	speedup := func(what string, single, mounted []time.Duration) {
		s, mm := median(single), median(mounted)
		b.Logf("%s: one connection %v (%.0f MiB/s), mount %v (%.0f MiB/s): %.2f× one connection", what,
			s, size/(1<<20)/s.Seconds(), mm, size/(1<<20)/mm.Seconds(), float64(s)/float64(mm))
		b.ReportMetric(float64(s)/float64(mm), what+"-speedup")
	}
	speedup("read", gets, reads)
	speedup("write", puts, writes)
	for _, p := range []struct {
		what string
		peak *heapPeak
	}{{"read", &readPeak}, {"write", &writePeak}} {
		b.Logf("%s: peak heap %.0f MiB over the %.0f MiB before", p.what, float64(p.peak.over())/(1<<20), float64(p.peak.base.Load())/(1<<20))
		b.ReportMetric(float64(p.peak.over())/(1<<20), p.what+"-peak-heap-MiB")
	}
}

// heapPeak samples the Go heap in use while watched.
type heapPeak struct {
	base, max atomic.Int64
}

func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// watch samples every 10 ms until the returned func is called.
func (p *heapPeak) watch() func() {
	runtime.GC()
	if p.base.Load() == 0 {
		p.base.Store(heapInUse())
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInUse(); h > p.max.Load() {
				p.max.Store(h)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (p *heapPeak) over() int64 { return max(0, p.max.Load()-p.base.Load()) }
