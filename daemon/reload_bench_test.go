package daemon_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon/event"
)

// benchLayer is a 20 MiB layer directory shaped like the FUSE client's: a
// 9 MiB binary per platform overlay (amd64 and arm64) and 2 MiB of common
// files. The binaries are seeded bytes of 4 bits of entropy, which gzip
// halves as it does compiled code.
func benchLayer(tb testing.TB) map[string]string {
	rng := rand.New(rand.NewChaCha8([32]byte{'f', 'u', 's', 'e'}))
	blob := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32()) & 0x0f
		}
		return string(b)
	}
	files := map[string]string{"foo.txt": "v0\n"}
	for i := range 8 {
		files[fmt.Sprintf("share/doc/%d.txt", i)] = strings.Repeat(fmt.Sprintf("line %d of the docs\n", i), (256<<10)/20)
	}
	for _, p := range []string{"linux_amd64", "linux_arm64"} {
		files[".platforms/"+p+"/.towerreg/entry*"] = blob(9 << 20)
	}
	return files
}

// BenchmarkSaveToServable measures, for each of b.N edits of a 20 MiB
// layer directory, the time from the atomic save of a file (the rename
// returned) to the first pull by tag (HEAD of the manifest, as a client's
// pull starts) that returns the new digest. It reports the median, and the
// median time the re-pack itself took (from the LayerReloaded events).
// Run it with -benchtime 10x for the median over 10 edits.
func BenchmarkSaveToServable(b *testing.B) {
	l := startLive(b, benchLayer(b))
	l.push(b, "test/img:latest", randomImage(b, types.OCIManifestSchema1, v1.Config{}))
	url := "http://" + l.addr + "/v2/" + strings.TrimPrefix(l.ref("test/img"), l.addr+"/") + "/manifests/latest"
	head := func() string {
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		req.Header.Set("Accept", string(types.OCIManifestSchema1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("HEAD %s: %s", url, resp.Status)
		}
		return resp.Header.Get("Docker-Content-Digest")
	}
	digest := head()
	var lat, packs []time.Duration
	b.ResetTimer()
	for i := range b.N {
		atomicSave(b, filepath.Join(l.dir, "foo.txt"), fmt.Sprintf("v%d\n", i+1))
		saved := time.Now()
		for {
			d := head()
			if d != digest {
				digest = d
				break
			}
			if time.Since(saved) > 30*time.Second {
				b.Fatal("no new digest 30s after the save")
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(saved))
	}
	b.StopTimer()
	for {
		select {
		case e := <-l.events.C():
			if r, ok := e.(event.LayerReloaded); ok && r.Changed {
				packs = append(packs, r.Duration)
			}
			continue
		default:
		}
		break
	}
	b.ReportMetric(float64(med(lat).Microseconds())/1000, "ms-median-save-to-servable")
	b.ReportMetric(float64(slices.Max(lat).Microseconds())/1000, "ms-max-save-to-servable")
	if len(packs) > 0 {
		b.ReportMetric(float64(med(packs).Microseconds())/1000, "ms-median-pack")
	}
}

func med(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
