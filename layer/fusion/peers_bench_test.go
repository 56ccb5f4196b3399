package fusion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// The fixtures of BenchmarkPeers, the sizes of issue 17's table.
const (
	peerBigSize    = 256 << 20 // sequential read and write
	peerListKeys   = 5000      // ls and ls -l
	peerSmallFiles = 500       // small files read one after another
	peerSmallSize  = 4 << 10
)

// peerWorkload is one row of the table. direct is the same work as a
// loop of S3 requests with minio-go, the reference of the row's ratios;
// mounted does it through m, on a mount made for it alone. Both return
// only the time of the work, not the set-up.
type peerWorkload struct {
	name    string // the row's title
	id      string // the row in metric names
	direct  func(ctx context.Context, tb testing.TB, r *peerRun) time.Duration
	mounted func(ctx context.Context, tb testing.TB, r *peerRun, m *peerMount) time.Duration
	// startup: no direct loop; the row is the time from the client's
	// start to the first ls, in milliseconds.
	startup bool
	// warm: the caches are not dropped, and a mount before the timed one
	// has put the client's program and libraries in them.
	warm bool
}

// peerRun is the state of one BenchmarkPeers run.
type peerRun struct {
	*peerSetup
	core  minio.Core
	big   []byte // what the write workload writes
	small [][]byte
	buf   []byte
	drop  cacheDropper
	seq   int // names the written objects apart
}

// BenchmarkPeers measures issue 17's workloads through tower-reg's FUSE
// client (the entry binary, as a container runs it), s3fs, and rclone mount
// with --vfs-cache-mode off and full, all against one versitygw on
// loopback, each as a ratio to the same work done with direct S3 requests
// in the same run, and the start-up of each client to its first ls, with
// its program in the page cache and without. Every measurement gets a new
// mount, and the caches are dropped before it (but for the warm start-up);
// each round interleaves the clients, starting from a different one; the
// table gives the medians of the rounds.
//
// It runs only with TOWERREG_BENCH_PEERS=1, and then fails, never skips,
// when a peer is missing:
//
//	make bench-peers                # installs s3fs and rclone, 5 rounds
func BenchmarkPeers(b *testing.B) {
	tools := needPeers(b)
	s3test.NeedFUSE(b)
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "peers")
	setup := newPeerSetup(b, srv, bucket, tools)
	r := &peerRun{peerSetup: setup, core: minio.Core{Client: srv.Client},
		big: randomBytes(7, peerBigSize), buf: make([]byte, 1<<20)}
	srv.WriteObject(b, bucket, "big.bin", randomBytes(8, peerBigSize))
	for i := range peerListKeys {
		srv.WriteObject(b, bucket, fmt.Sprintf("list/k-%05d", i), []byte("x"))
	}
	for i := range peerSmallFiles {
		data := randomBytes(uint64(100+i), peerSmallSize)
		r.small = append(r.small, data)
		srv.WriteObject(b, bucket, smallKey(i), data)
	}
	loadBefore := loadAverage()

	ctx := b.Context()
	clients := append([]string{"direct"}, peerNames()...)
	times := map[string]map[string][]time.Duration{}
	rounds := 0
	for b.Loop() {
		for _, w := range peerWorkloads {
			if times[w.name] == nil {
				times[w.name] = map[string][]time.Duration{}
			}
			// The client that goes first moves by one each round.
			for i := range clients {
				c := clients[(i+rounds)%len(clients)]
				if c == "direct" && w.startup {
					continue
				}
				times[w.name][c] = append(times[w.name][c], r.measure(ctx, b, w, c))
			}
		}
		rounds++
	}
	b.StopTimer()
	// b.Log would do, but go test keeps only 10 lines of a benchmark's log.
	fmt.Printf("\nBenchmarkPeers, %s: %d rounds; load average %s before, %s after; page caches %s\n\n%s\n%s\n",
		time.Now().UTC().Format(time.DateOnly), rounds, loadBefore, loadAverage(), r.drop.state(),
		peerRatios(times, b.ReportMetric), peerMedians(times))
}

func peerNames() []string {
	var out []string
	for _, p := range peers {
		out = append(out, p.name)
	}
	return out
}

// measure runs w once for client c on a mount of its own.
func (r *peerRun) measure(ctx context.Context, tb testing.TB, w peerWorkload, c string) time.Duration {
	tb.Helper()
	if c == "direct" {
		r.drop.drop(ctx, tb)
		return w.direct(ctx, tb, r)
	}
	var p peer
	for _, q := range peers {
		if q.name == c {
			p = q
		}
	}
	if w.startup {
		if w.warm {
			m, _ := p.mount(tb, r.peerSetup)
			readdirnames(tb, m.bucket)
			m.close(tb)
		} else {
			r.drop.drop(ctx, tb)
		}
		m, mounting := p.mount(tb, r.peerSetup)
		defer m.close(tb)
		start := time.Now()
		names := readdirnames(tb, m.bucket)
		d := mounting + time.Since(start)
		if len(names) != 3 {
			tb.Fatalf("%s: ls of the bucket gave %v, want big.bin, list, small", c, names)
		}
		return d
	}
	m, _ := p.mount(tb, r.peerSetup)
	defer m.close(tb)
	r.drop.drop(ctx, tb)
	return w.mounted(ctx, tb, r, m)
}

var peerWorkloads = []peerWorkload{
	{name: "sequential read, 256 MiB", id: "read", direct: directRead, mounted: mountedRead},
	{name: "`ls` of 5,000 keys", id: "ls", direct: directList, mounted: mountedList(false)},
	{name: "`ls -l` of 5,000 keys", id: "ls-l", direct: directList, mounted: mountedList(true)},
	{name: "500 × 4 KiB files, cold mount", id: "small-cold", direct: directSmall, mounted: mountedSmall(false)},
	{name: "500 × 4 KiB files, after `ls -l`", id: "small-listed", direct: directSmall, mounted: mountedSmall(true)},
	{name: "write 256 MiB, until visible in S3", id: "write", direct: directWrite, mounted: mountedWrite},
	{name: "start-up to the first `ls`", id: "startup", startup: true, warm: true},
	{name: "start-up to the first `ls`, caches dropped", id: "startup-dropped", startup: true},
}

func smallKey(i int) string { return fmt.Sprintf("small/f-%03d", i) }

func directRead(ctx context.Context, tb testing.TB, r *peerRun) time.Duration {
	return timedRead(tb, "direct GET", getter(ctx, r.core, r.bucket, "big.bin"), peerBigSize, r.buf)
}

func mountedRead(_ context.Context, tb testing.TB, r *peerRun, m *peerMount) time.Duration {
	return timedRead(tb, m.name, opener(filepath.Join(m.bucket, "big.bin")), peerBigSize, r.buf)
}

// readAll reads src to the end in len(buf) reads. io.Copy to io.Discard
// would not: io.Discard reads in 8 KiB, whatever buffer it is given.
func readAll(src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := src.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func directList(ctx context.Context, tb testing.TB, r *peerRun) time.Duration {
	return timedList(ctx, tb, r.srv.Client, r.bucket, "list/", peerListKeys)
}

// mountedList is `ls` (the names, as getdents gives them) or, long,
// `ls -l` (and an lstat of each).
func mountedList(long bool) func(context.Context, testing.TB, *peerRun, *peerMount) time.Duration {
	return func(_ context.Context, tb testing.TB, _ *peerRun, m *peerMount) time.Duration {
		start := time.Now()
		lsLong(tb, m, "list", peerListKeys, long)
		return time.Since(start)
	}
}

// lsLong lists dir under the bucket, and stats each entry if long.
func lsLong(tb testing.TB, m *peerMount, dir string, want int, long bool) {
	tb.Helper()
	names := readdirnames(tb, filepath.Join(m.bucket, dir))
	if len(names) != want {
		tb.Fatalf("%s: ls %s: %d entries, want %d", m.name, dir, len(names), want)
	}
	if long {
		for _, n := range names {
			if _, err := os.Lstat(filepath.Join(m.bucket, dir, n)); err != nil {
				tb.Fatalf("%s: %v", m.name, err)
			}
		}
	}
}

func readdirnames(tb testing.TB, dir string) []string {
	tb.Helper()
	f, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		tb.Fatalf("readdir %s: %v", dir, err)
	}
	return names
}

func directSmall(ctx context.Context, tb testing.TB, r *peerRun) time.Duration {
	start := time.Now()
	for i, want := range r.small {
		body, _, _, err := r.core.GetObject(ctx, r.bucket, smallKey(i), minio.GetObjectOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || !bytes.Equal(got, want) {
			tb.Fatalf("direct GET %s: %d bytes (want %d), %v", smallKey(i), len(got), len(want), err)
		}
	}
	return time.Since(start)
}

// mountedSmall reads the small files one after another, after an
// untimed `ls -l` of their directory if listed.
func mountedSmall(listed bool) func(context.Context, testing.TB, *peerRun, *peerMount) time.Duration {
	return func(_ context.Context, tb testing.TB, r *peerRun, m *peerMount) time.Duration {
		if listed {
			lsLong(tb, m, "small", peerSmallFiles, true)
		}
		start := time.Now()
		for i, want := range r.small {
			got, err := os.ReadFile(filepath.Join(m.bucket, filepath.FromSlash(smallKey(i))))
			if err != nil || !bytes.Equal(got, want) {
				tb.Fatalf("%s: read %s: %d bytes (want %d), %v", m.name, smallKey(i), len(got), len(want), err)
			}
		}
		return time.Since(start)
	}
}

func directWrite(ctx context.Context, tb testing.TB, r *peerRun) time.Duration {
	key := r.writeKey("direct")
	start := time.Now()
	_, err := r.srv.Client.PutObject(ctx, r.bucket, key, bytes.NewReader(r.big), int64(len(r.big)), minio.PutObjectOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	d := time.Since(start)
	r.remove(ctx, tb, key)
	return d
}

// mountedWrite writes in 1 MiB writes, closes, then asks S3 every 10 ms
// until the object is there whole: rclone's full cache mode uploads after
// the close.
func mountedWrite(ctx context.Context, tb testing.TB, r *peerRun, m *peerMount) time.Duration {
	key := r.writeKey(m.name)
	defer r.remove(ctx, tb, key)
	start := time.Now()
	f, err := os.Create(filepath.Join(m.bucket, key))
	if err != nil {
		tb.Fatalf("%s: %v", m.name, err)
	}
	for off := 0; off < len(r.big); off += len(r.buf) {
		if _, err := f.Write(r.big[off:min(off+len(r.buf), len(r.big))]); err != nil {
			f.Close()
			tb.Fatalf("%s: write: %v", m.name, err)
		}
	}
	if err := f.Close(); err != nil {
		tb.Fatalf("%s: close: %v", m.name, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := r.srv.Client.StatObject(ctx, r.bucket, key, minio.StatObjectOptions{})
		if err == nil && info.Size == int64(len(r.big)) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %s not in S3 whole 2 minutes after the close: %+v, %v", m.name, key, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *peerRun) writeKey(client string) string {
	r.seq++
	return fmt.Sprintf("written-%s-%d.bin", client, r.seq)
}

// remove deletes a written object, so that the run's disk use stays at
// one write.
func (r *peerRun) remove(ctx context.Context, tb testing.TB, key string) {
	tb.Helper()
	if err := r.srv.Client.RemoveObject(ctx, r.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		tb.Errorf("remove %s: %v", key, err)
	}
}
