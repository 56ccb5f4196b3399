package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// aged stores n blobs of size bytes, the i-th last used (n-i) hours ago.
func aged(t *testing.T, s *Store, n, size int) []v1.Hash {
	t.Helper()
	var hs []v1.Hash
	for i := range n {
		b := bytes.Repeat([]byte{byte('a' + i)}, size)
		h, err := s.PutBytes(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		setUsed(t, s, h, time.Now().Add(-time.Duration(n-i)*time.Hour))
		hs = append(hs, h)
	}
	return hs
}

func setUsed(t *testing.T, s *Store, h v1.Hash, when time.Time) {
	t.Helper()
	p, _ := s.blobPath(h)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}

// block is what a small file costs: the blobs of TestGC are 100 bytes.
const block = blockSize

func TestGC(t *testing.T) {
	tests := []struct {
		name     string
		max      int64
		grace    time.Duration
		keep     []int // indexes kept by the keep func
		pin      []int
		use      []int // indexes read (OpenBlob) just before the GC
		want     []int // indexes left
		wantSize int64
	}{
		{name: "under the limit: nothing", max: 4 * block, want: []int{0, 1, 2, 3}, wantSize: 4 * block},
		{name: "no limit", max: -1, want: []int{0, 1, 2, 3}, wantSize: 4 * block},
		{name: "least recently used first", max: 2*block + block/2, want: []int{2, 3}, wantSize: 2 * block},
		{name: "a small blob costs a whole block", max: 3*block + block/2, want: []int{1, 2, 3}, wantSize: 3 * block},
		{name: "current generation kept", max: 2*block + block/2, keep: []int{0}, want: []int{0, 3}, wantSize: 2 * block},
		{name: "pinned kept", max: 2*block + block/2, pin: []int{0, 1}, want: []int{0, 1}, wantSize: 2 * block},
		{name: "a read makes a blob recent", max: 2*block + block/2, use: []int{0}, want: []int{0, 3}, wantSize: 2 * block},
		{name: "grace: recent blobs stay, even over the limit", max: 0, grace: 150 * time.Minute, want: []int{2, 3}, wantSize: 2 * block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			hs := aged(t, s, 4, 100)
			keep := map[v1.Hash]bool{}
			for _, i := range tt.keep {
				keep[hs[i]] = true
			}
			var pinned []v1.Hash
			for _, i := range tt.pin {
				pinned = append(pinned, hs[i])
			}
			unpin := s.Pin(pinned...)
			defer unpin()
			for _, i := range tt.use {
				f, err := s.OpenBlob(hs[i])
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			st, err := s.GC(t.Context(), tt.max, tt.grace, func(h v1.Hash) bool { return keep[h] })
			if err != nil {
				t.Fatal(err)
			}
			if st.Before != 4*block || st.After != tt.wantSize || st.Removed != 4-len(tt.want) {
				t.Errorf("stats %+v, want before %d, after %d, %d removed", st, 4*block, tt.wantSize, 4-len(tt.want))
			}
			left := map[int]bool{}
			for _, i := range tt.want {
				left[i] = true
			}
			for i, h := range hs {
				_, err := s.Stat(h)
				if left[i] && err != nil {
					t.Errorf("blob %d was removed: %v", i, err)
				}
				if !left[i] && !errors.Is(err, ErrNotFound) {
					t.Errorf("blob %d was kept (err %v)", i, err)
				}
			}
		})
	}
}

func TestUnpin(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hs := aged(t, s, 2, 100)
	unpin1 := s.Pin(hs[0])
	unpin2 := s.Pin(hs[0])
	unpin1()
	unpin1() // once only: it must not release the other holder's pin
	if st, _ := s.GC(t.Context(), 0, 0, nil); st.Removed != 1 {
		t.Fatalf("removed %d with one pin left, want 1", st.Removed)
	}
	unpin2()
	if st, _ := s.GC(t.Context(), 0, 0, nil); st.Removed != 1 || st.After != 0 {
		t.Fatalf("after unpinning: %+v, want the last blob removed", st)
	}
}

// TestOpenCleansTmp: leftovers of crashed writes go at Open; files young
// enough to be another writer's stay.
func TestOpenCleansTmp(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "tmp")
	for _, n := range []string{"blob-old", "blob-new"} {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTmp)
	if err := os.Chtimes(filepath.Join(tmp, "blob-old"), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "blob-old")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale tmp file kept (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "blob-new")); err != nil {
		t.Errorf("a young tmp file was removed: %v", err)
	}
}
