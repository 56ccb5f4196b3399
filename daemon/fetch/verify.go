package fetch

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"

	"github.com/tower-reg/tower-reg/layer"
)

// meter reads the compressed body: it counts, hashes and copies every byte
// to the blob, and fails as soon as the body is longer than promised, so an
// oversized body is never read past one byte over.
type meter struct {
	ctx   context.Context
	r     io.Reader
	h     hash.Hash
	w     io.Writer
	n     int64
	limit int64
	// err is the first failure of the body itself (too long, transport,
	// store). The gzip reader may report it as a decoding error, so it is
	// kept here and wins over whatever the decoder says.
	err error
}

func (m *meter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if err := m.ctx.Err(); err != nil {
		m.err = err
		return 0, err
	}
	n, err := m.r.Read(p)
	if m.n+int64(n) > m.limit {
		m.err = &MismatchError{Field: "gzipSize", Expected: strconv.FormatInt(m.limit, 10), Actual: "more than " + strconv.FormatInt(m.limit, 10)}
		return 0, m.err
	}
	m.n += int64(n)
	m.h.Write(p[:n])
	if _, werr := m.w.Write(p[:n]); werr != nil {
		m.err = fmt.Errorf("store: %w", werr)
		return 0, m.err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The connection ended before its Content-Length: a truncated
		// body, which is what the size check is there to name.
		m.err = &MismatchError{Field: "gzipSize", Expected: strconv.FormatInt(m.limit, 10), Actual: strconv.FormatInt(m.n, 10) + " (body ended early)"}
		return n, m.err
	}
	if err != nil && err != io.EOF {
		m.err = err
	}
	return n, err
}

// verify streams body through the checks into w. It does not commit.
func verify(ctx context.Context, body io.Reader, l Layer, w io.Writer) (layer.Built, error) {
	m := &meter{ctx: ctx, r: io.LimitReader(body, l.GzipSize+1), h: sha256.New(), w: w, limit: l.GzipSize}
	zr, err := gzip.NewReader(m)
	if err != nil {
		if m.err != nil {
			return layer.Built{}, m.err
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return layer.Built{}, sizeMismatch(l.GzipSize, m.n)
		}
		return layer.Built{}, fmt.Errorf("%w (%v)", ErrNotGzip, err)
	}
	th := sha256.New()
	built, terr := readTar(io.TeeReader(zr, th))
	if terr == nil {
		// The tar ends before the gzip stream does (padding, a second
		// gzip member): the tar digest covers all of it, as a runtime's
		// diff_id does.
		_, terr = io.Copy(th, zr)
	}
	if m.err != nil {
		return layer.Built{}, m.err
	}
	// Read what the decoder left: bytes after the gzip stream count too.
	// After a decoding failure this also lets the size and the digest say
	// whether the bytes were wrong, which is the likelier cause; the
	// decoding failure is named only when they match.
	if _, err := io.Copy(io.Discard, m); err != nil {
		return layer.Built{}, err
	}
	if m.n != l.GzipSize {
		return layer.Built{}, sizeMismatch(l.GzipSize, m.n)
	}
	if got := sum(m.h); got != l.GzipDigest {
		return layer.Built{}, &MismatchError{Field: "gzipDigest", Expected: l.GzipDigest.String(), Actual: got.String()}
	}
	if terr != nil {
		return layer.Built{}, fmt.Errorf("%w: %v", ErrCorrupt, terr)
	}
	if got := sum(th); got != l.TarDigest {
		return layer.Built{}, &MismatchError{Field: "tarDigest", Expected: l.TarDigest.String(), Actual: got.String()}
	}
	built.GzipDigest = l.GzipDigest
	built.GzipSize = l.GzipSize
	built.TarDigest = l.TarDigest
	return built, nil
}

// readTar walks the headers (file contents are skipped, still hashed by the
// tee) to tell whether the layer carries the entry, as Pack reports it.
func readTar(r io.Reader) (layer.Built, error) {
	var b layer.Built
	tr := tar.NewReader(r)
	entry := strings.TrimPrefix(layer.EntryPath, "/")
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return layer.Built{}, err
		}
		b.Files++
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == entry && hdr.Typeflag == tar.TypeReg && hdr.Mode&0o111 != 0 {
			b.HasEntry = true
		}
	}
}

func sizeMismatch(want, got int64) error {
	return &MismatchError{Field: "gzipSize", Expected: strconv.FormatInt(want, 10), Actual: strconv.FormatInt(got, 10)}
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}
