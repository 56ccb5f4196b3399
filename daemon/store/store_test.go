package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestBlobRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(`{"hello":"world"}`)
	want, _, _ := v1.SHA256(bytes.NewReader(b))
	got, err := s.PutBytes(ctx, b)
	if err != nil || got != want {
		t.Fatalf("PutBytes = %s, %v; want %s", got, err, want)
	}
	if _, err := s.PutBytes(ctx, b); err != nil {
		t.Fatalf("second PutBytes of the same bytes: %v", err)
	}
	read, err := s.ReadBlob(want)
	if err != nil || !bytes.Equal(read, b) {
		t.Fatalf("ReadBlob = %q, %v", read, err)
	}
	if n, err := s.Stat(want); err != nil || n != int64(len(b)) {
		t.Fatalf("Stat = %d, %v", n, err)
	}
	fi, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha256", want.Hex))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != filePerm {
		t.Fatalf("blob mode %o, want %o: the cache may hold private configs", perm, filePerm)
	}
	di, err := os.Stat(filepath.Join(s.Root(), "blobs"))
	if err != nil || di.Mode().Perm() != dirPerm {
		t.Fatalf("dir mode %v, %v; want %o", di.Mode(), err, dirPerm)
	}
}

func TestCommitRefusesWrongDigest(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("some bytes"))
	claimed, _, _ := v1.SHA256(bytes.NewReader([]byte("other bytes")))
	if err := w.Commit(ctx, claimed); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit with a wrong digest: %v, want ErrDigestMismatch", err)
	}
	w.Close()
	if _, err := s.Stat(claimed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused blob is in the store: %v", err)
	}
	tmp, _ := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
}

func TestMissingAndMalformed(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: "0000000000000000000000000000000000000000000000000000000000000000"}
	tests := []struct {
		name string
		h    v1.Hash
		is   error
	}{
		{"missing", missing, ErrNotFound},
		{"traversal", v1.Hash{Algorithm: "sha256", Hex: "../../etc/passwd"}, nil},
		{"other algorithm", v1.Hash{Algorithm: "sha512", Hex: missing.Hex}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.OpenBlob(tt.h)
			if err == nil {
				t.Fatal("OpenBlob succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			if tt.is == nil && errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a malformed digest reached the file system: %v", err)
			}
		})
	}
}

func TestRecords(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type rec struct{ A string }
	var got rec
	if err := s.GetRecord("k", "any/key with spaces", &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRecord of nothing: %v", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.PutRecord(ctx, "k", "any/key with spaces", rec{v}); err != nil {
			t.Fatal(err)
		}
		if err := s.GetRecord("k", "any/key with spaces", &got); err != nil || got.A != v {
			t.Fatalf("GetRecord = %+v, %v; want %q", got, err, v)
		}
	}
	if err := s.PutRecord(ctx, "../escape", "x", rec{}); err == nil {
		t.Fatal("a record kind with a path separator was accepted")
	}
}
