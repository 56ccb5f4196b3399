package daemon_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tower-reg/tower-reg/daemon"
	"github.com/tower-reg/tower-reg/daemon/config"
)

// BenchmarkColdPull pulls a new 256 MiB, 3-layer image through an
// in-process daemon with ggcr's remote each iteration, layers in parallel
// as clients do, every blob streamed from an in-memory upstream, checked
// and kept. It is the in-process twin of e2e's BenchmarkPullBigCold, for a
// CPU profile of the daemon's cold path:
//
//	go test -run '^$' -bench ColdPull -benchtime 3x -cpuprofile cpu.out ./daemon/
func BenchmarkColdPull(b *testing.B) {
	const layers, size = 3, 256 << 20
	d, err := daemon.New(b.Context(), daemon.Options{
		Config:      config.Default(),
		CacheDir:    b.TempDir(),
		Layer:       testLayer(),
		LayerSource: "test",
		Keychain:    authn.NewMultiKeychain(),
	})
	if err != nil {
		b.Fatal(err)
	}
	proxy := httptest.NewServer(d.Handler())
	b.Cleanup(proxy.Close)
	b.Cleanup(d.WaitIdle)

	b.SetBytes(size)
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		// An upstream of its own each time: the in-memory registry
		// keeps every blob, and 256 MiB an iteration adds up.
		up := httptest.NewServer(registry.New(registry.Logger(quiet)))
		img := empty.Image
		for range layers {
			buf := make([]byte, size/layers)
			rand.Read(buf)
			img, err = mutate.AppendLayers(img, static.NewLayer(buf, types.OCILayer))
			if err != nil {
				b.Fatal(err)
			}
		}
		repo := fmt.Sprintf("test/cold%d", i)
		if err := remote.Write(mustRef(b, host(up)+"/"+repo+":latest"), img); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		pulled, err := remote.Image(mustRef(b, host(proxy)+"/"+pathHost(up)+"/"+repo+":latest"))
		if err != nil {
			b.Fatal(err)
		}
		ls, err := pulled.Layers()
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(ls))
		for j, l := range ls {
			wg.Go(func() {
				rc, err := l.Compressed() // checks the digest at the end
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					if cerr := rc.Close(); err == nil {
						err = cerr
					}
				}
				errs[j] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		d.WaitIdle() // the commits, outside the pull's time
		up.Close()
		b.StartTimer()
	}
}
