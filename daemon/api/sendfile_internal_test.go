package api

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

// connWriter is the server's ResponseWriter as the blob writers see it: it
// takes deadlines, and a file by ReadFrom, which reaches sendfile only as
// an *os.File under one io.LimitedReader.
type connWriter struct {
	header    http.Header
	got       bytes.Buffer
	sendfile  int64 // bytes that came as sendfile takes them
	pieces    []int64
	deadlines int
}

func (c *connWriter) Header() http.Header         { return c.header }
func (c *connWriter) WriteHeader(int)             {}
func (c *connWriter) Write(p []byte) (int, error) { return c.got.Write(p) }

func (c *connWriter) SetWriteDeadline(time.Time) error {
	c.deadlines++
	return nil
}

func (c *connWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.got.ReadFrom(r)
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			c.sendfile += n
		}
	}
	c.pieces = append(c.pieces, n)
	return n, err
}

// TestBlobWritersKeepSendfile: a stored blob's file passes the event's
// counting writer and the stall writer down to the connection as sendfile
// takes it, a piece per deadline, as a chunk per deadline goes by Write.
func TestBlobWritersKeepSendfile(t *testing.T) {
	const size = 3*stallPiece + 100
	blob := bytes.Repeat([]byte("blob"), size/4)
	f, err := os.CreateTemp(t.TempDir(), "blob")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(blob); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  func() io.Reader
		// sendfile is whether the connection gets it as a file.
		sendfile bool
	}{
		{"a section of a file", func() io.Reader { return io.NewSectionReader(f, 0, size) }, false},
		{"a file under a limit, as ServeContent sends it", func() io.Reader { f.Seek(0, io.SeekStart); return &io.LimitedReader{R: f, N: size} }, true},
		{"a file under a limit shorter than the file", func() io.Reader { f.Seek(0, io.SeekStart); return &io.LimitedReader{R: f, N: size - 1} }, true},
		{"any reader", func() io.Reader { return bytes.NewReader(blob) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := &connWriter{header: http.Header{}}
			st := stallWriter{ResponseWriter: conn, rc: http.NewResponseController(conn), stall: time.Minute}
			w := &statusWriter{ResponseWriter: st}
			src := tc.src()
			want := int64(size)
			if lr, ok := src.(*io.LimitedReader); ok {
				want = lr.N
			}
			n, err := io.Copy(w, src)
			if err != nil || n != want || int64(conn.got.Len()) != want || !bytes.Equal(conn.got.Bytes(), blob[:want]) {
				t.Fatalf("copied %d (%v), the connection got %d bytes; want the %d of the blob", n, err, conn.got.Len(), want)
			}
			if w.status != http.StatusOK || w.bytes != want {
				t.Errorf("the event's writer saw status %d and %d bytes, want 200 and %d", w.status, w.bytes, want)
			}
			if got := conn.sendfile == want; got != tc.sendfile {
				t.Errorf("%d of %d bytes came as sendfile takes them, want sendfile %v", conn.sendfile, want, tc.sendfile)
			}
			for _, p := range conn.pieces {
				if p > stallPiece {
					t.Errorf("a piece of %d bytes under one deadline, want at most %d", p, stallPiece)
				}
			}
			if conn.deadlines < len(conn.pieces) {
				t.Errorf("%d deadlines for %d pieces", conn.deadlines, len(conn.pieces))
			}
		})
	}
}
