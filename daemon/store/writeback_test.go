package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestWriteback checks which ranges a Writer hands to writeback as a blob
// streams in, and that a failing writeback changes nothing of the blob: it
// is a hint, and Commit's fsync is what counts.
func TestWriteback(t *testing.T) {
	const w = writebackWindow
	type span struct{ off, n int64 }
	for _, tc := range []struct {
		name   string
		writes []int
		want   []span
	}{
		{"small blob", []int{1 << 20, 1 << 20}, nil},
		{"exactly one window", []int{w}, []span{{0, w}}},
		{"chunks crossing windows", []int{3 << 20, 3 << 20, 3 << 20, 3 << 20, 3 << 20, 3 << 20}, []span{{0, 9 << 20}, {9 << 20, 9 << 20}}},
		{"one write of many windows", []int{3*w + 5}, []span{{0, 3*w + 5}}},
		{"a tail below the window", []int{w, w - 1}, []span{{0, w}}},
	} {
		for _, fail := range []bool{false, true} {
			name := tc.name
			if fail {
				name += ", writeback failing"
			}
			t.Run(name, func(t *testing.T) {
				s, err := Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				var got []span
				s.writeback = func(_ *os.File, off, n int64) error {
					got = append(got, span{off, n})
					if fail {
						return errors.New("writeback refused")
					}
					return nil
				}
				ctx := context.Background()
				bw, err := s.Create(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer bw.Close()
				var all []byte
				for i, n := range tc.writes {
					p := bytes.Repeat([]byte{byte(i + 1)}, n)
					all = append(all, p...)
					if m, err := bw.Write(p); m != n || err != nil {
						t.Fatalf("Write = %d, %v; want %d, nil", m, err, n)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("writeback ranges %v, want %v", got, tc.want)
				}
				d, _, _ := v1.SHA256(bytes.NewReader(all))
				if err := bw.Commit(ctx, d); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				read, err := s.ReadBlob(d)
				if err != nil || !bytes.Equal(read, all) {
					t.Fatalf("ReadBlob: %d bytes, %v; want the %d written", len(read), err, len(all))
				}
			})
		}
	}
}

// TestStartWriteback runs the real call: on Linux the kernel must take
// it, or every blob would go back to being written whole at its fsync.
func TestStartWriteback(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "blob-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := startWriteback(f, 0, 1<<20); err != nil {
		t.Fatalf("startWriteback: %v", err)
	}
	if runtime.GOOS != "linux" {
		return // a no-op elsewhere
	}
	// The kernel refuses a negative offset: an error shows the call
	// reached it.
	if err := startWriteback(f, -1, 1<<20); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("startWriteback at offset -1 = %v, want EINVAL from the kernel", err)
	}
}
