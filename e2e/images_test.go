package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ---------------------------------------------------------------------------
// Test images, built offline

// The repositories the test images are pushed to.
const (
	repoBusybox = "test/busybox:latest" // Docker schema 2, linux/amd64, Cmd ["sh"]
	repoEcho    = "test/echo:latest"    // OCI, Entrypoint ["/bin/echo","entry says:"], Cmd ["hello world"]
	repoNoShell = "test/noshell:latest" // Docker schema 2, only /bin/busybox, Entrypoint ["/bin/busybox","echo"]
	repoMulti   = "test/multi:latest"   // OCI index: linux/amd64 (busybox), linux/arm64 (a text file)
)

// What the images print when run with no arguments.
const (
	echoOutput    = "entry says: hello world"
	noShellOutput = "no shell here"
	arm64Text     = "arm64 payload: not meant to run here\n"
)

// fixtures are the test images. They are deterministic: the same busybox
// binary always gives the same digests.
type fixtures struct {
	Busybox    v1.Image // test/busybox
	Echo       v1.Image // test/echo
	NoShell    v1.Image // test/noshell
	Multi      v1.ImageIndex
	MultiAMD64 v1.Image // Multi's linux/amd64 child: busybox, as OCI
	MultiARM64 v1.Image // Multi's linux/arm64 child
}

// fixedTime stamps files and configs so that digests never change.
var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

var (
	fixturesOnce sync.Once
	fixturesVal  *fixtures
	fixturesErr  error
)

// testImages builds the test images once per run.
func testImages(tb testing.TB) *fixtures {
	tb.Helper()
	bb := need(tb, "busybox")
	fixturesOnce.Do(func() { fixturesVal, fixturesErr = buildFixtures(bb) })
	if fixturesErr != nil {
		tb.Fatalf("building the test images: %v", fixturesErr)
	}
	return fixturesVal
}

// tarEntry is one file, directory or symlink of a test layer.
type tarEntry struct {
	Name string
	Mode int64
	Body []byte // a regular file
	Link string // a symlink
	Dir  bool
}

// tarBytes writes entries as an uncompressed tar.
func tarBytes(entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, ModTime: fixedTime, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			h.Typeflag, h.Name = tar.TypeDir, strings.TrimSuffix(e.Name, "/")+"/"
		case e.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.Body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarLayer is a gzip layer of the given media type holding entries.
func tarLayer(mt types.MediaType, entries ...tarEntry) (v1.Layer, error) {
	b, err := tarBytes(entries)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(mt))
}

// newImage is an image of one manifest type with the given layers, for
// platform, running cfg.
func newImage(manifestType types.MediaType, platform v1.Platform, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, manifestType)
	if manifestType == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for i, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: fixedTime}, CreatedBy: fmt.Sprintf("e2e: layer %d", i)},
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// crane validate checks these against the platform an index gives.
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Created = v1.Time{Time: fixedTime}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

func buildFixtures(busyboxPath string) (*fixtures, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	busyboxEntries := []tarEntry{
		{Name: "bin", Mode: 0o755, Dir: true},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "env"} {
		busyboxEntries = append(busyboxEntries, tarEntry{Name: "bin/" + applet, Mode: 0o777, Link: "busybox"})
	}
	// The same bytes as a Docker and as an OCI layer: one blob, two
	// media types.
	dockerBusybox, err := tarLayer(types.DockerLayer, busyboxEntries...)
	if err != nil {
		return nil, err
	}
	ociBusybox, err := tarLayer(types.OCILayer, busyboxEntries...)
	if err != nil {
		return nil, err
	}
	// noshell has the binary alone: no /bin/sh for the entry to lean on.
	noShellLayer, err := tarLayer(types.DockerLayer, busyboxEntries[:2]...)
	if err != nil {
		return nil, err
	}
	arm64Layer, err := tarLayer(types.OCILayer, tarEntry{Name: "hello.txt", Mode: 0o644, Body: []byte(arm64Text)})
	if err != nil {
		return nil, err
	}

	shell := v1.Config{Cmd: []string{"sh"}, Env: []string{pathEnv}}
	var fx fixtures
	if fx.Busybox, err = newImage(types.DockerManifestSchema2, amd64, shell, dockerBusybox); err != nil {
		return nil, err
	}
	if fx.Echo, err = newImage(types.OCIManifestSchema1, amd64, v1.Config{
		Entrypoint: []string{"/bin/echo", "entry says:"},
		Cmd:        []string{"hello world"},
		Env:        []string{pathEnv},
	}, ociBusybox); err != nil {
		return nil, err
	}
	if fx.NoShell, err = newImage(types.DockerManifestSchema2, amd64, v1.Config{
		Entrypoint: []string{"/bin/busybox", "echo"},
		Cmd:        []string{noShellOutput},
	}, noShellLayer); err != nil {
		return nil, err
	}
	if fx.MultiAMD64, err = newImage(types.OCIManifestSchema1, amd64, shell, ociBusybox); err != nil {
		return nil, err
	}
	if fx.MultiARM64, err = newImage(types.OCIManifestSchema1, arm64, v1.Config{
		Cmd: []string{"cat", "/hello.txt"},
	}, arm64Layer); err != nil {
		return nil, err
	}
	fx.Multi = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: fx.MultiAMD64, Descriptor: v1.Descriptor{Platform: &amd64}},
		mutate.IndexAddendum{Add: fx.MultiARM64, Descriptor: v1.Descriptor{Platform: &arm64}},
	)
	return &fx, nil
}

// bigImage is a linux/amd64 OCI image of `layers` layers holding about
// totalBytes of pseudo-random data in all, for benchmarks (256 MB in 3
// layers is the usual call). The data is random so that gzip cannot shrink
// it: the compressed blobs are as large as the content. It is streamed, not
// held in memory, and seeded: every read of a layer gives the same bytes,
// which the digest computation and the push both need (ggcr reads a layer
// more than once), and the same seed gives the same image.
func bigImage(tb testing.TB, layers int, totalBytes int64, seed uint64) v1.Image {
	tb.Helper()
	per := totalBytes / int64(layers)
	var ls []v1.Layer
	for i := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return randomTar(seed, uint64(i), per), nil
		}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			tb.Fatalf("big layer %d: %v", i, err)
		}
		ls = append(ls, l)
	}
	img, err := newImage(types.OCIManifestSchema1, amd64, v1.Config{Cmd: []string{"sh"}, Env: []string{pathEnv}}, ls...)
	if err != nil {
		tb.Fatalf("big image: %v", err)
	}
	return img
}

// randomTar streams a tar with one file of size pseudo-random bytes.
func randomTar(seed, stream uint64, size int64) io.ReadCloser {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], stream)
	src := rand.NewChaCha8(key)
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{
			Name: fmt.Sprintf("big/layer-%d.bin", stream), Mode: 0o644, Size: size,
			ModTime: fixedTime, Typeflag: tar.TypeReg,
		})
		if err == nil {
			_, err = io.CopyN(tw, src, size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	return pr
}
