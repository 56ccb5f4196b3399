package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Records are small JSON documents filed under a kind and a free-form key:
// which rewritten digest belongs to which upstream digest, which repository a
// rewritten manifest was made for. Keys are hashed into file names, so any
// string is a safe key.
//
// A record may have an owner: the blob it describes. Its file is then
// named <owner hex>.<key hash>, so that GC, which sees only file names,
// collects it together with that blob and never before it: a manifest the
// store still holds keeps the records that let it be served. A record with
// no owner is collected on its own, least recently used first.
//
// Every record is a file of at least one disk block, and all of them count
// toward the store's size (see GC).

// noOwner is the zero hash: a record with no owner.
var noOwner v1.Hash

func (s *Store) recordPath(owner v1.Hash, kind, key string) (string, error) {
	if !validKind(kind) {
		return "", fmt.Errorf("bad record kind %q", kind)
	}
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:])
	if owner != noOwner {
		if _, err := s.blobPath(owner); err != nil {
			return "", fmt.Errorf("record %s: owner: %w", kind, err)
		}
		name = owner.Hex + "." + name
	}
	return filepath.Join(s.root, "records", kind, name), nil
}

// validKind: a kind names one directory under records/.
func validKind(kind string) bool {
	return kind != "" && kind != "." && kind != ".." && filepath.Base(kind) == kind
}

// recordOwner reads the owner back from a record's file name.
func recordOwner(name string) (v1.Hash, bool) {
	o, _, ok := strings.Cut(name, ".")
	if !ok || len(o) != 64 {
		return noOwner, false
	}
	if _, err := hex.DecodeString(o); err != nil {
		return noOwner, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: o}, true
}

// PutRecord stores v, JSON-encoded, under kind and key, replacing any
// previous value atomically. The record has no owner.
func (s *Store) PutRecord(ctx context.Context, kind, key string, v any) error {
	return s.PutRecordOf(ctx, noOwner, kind, key, v)
}

// GetRecord decodes the record under kind and key into v. It returns an
// error wrapping ErrNotFound when there is none.
func (s *Store) GetRecord(kind, key string, v any) error {
	return s.GetRecordOf(noOwner, kind, key, v)
}

// PutRecordOf stores v under kind and key as a record of the blob owner:
// GC removes it with that blob. Write the blob first: a record whose blob
// is missing is only the first thing GC collects.
func (s *Store) PutRecordOf(ctx context.Context, owner v1.Hash, kind, key string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.recordPath(owner, kind, key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	if err := s.writeRecord(p, b); err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	s.wrote(fileCost(int64(len(b))))
	return nil
}

// writeRecord writes b at p atomically. GC removes a record directory once
// it is empty, possibly between the MkdirAll and the rename: the rename
// then finds no directory, and is tried once more.
func (s *Store) writeRecord(p string, b []byte) error {
	var err error
	for range 2 {
		if err = os.MkdirAll(filepath.Dir(p), dirPerm); err != nil {
			return err
		}
		err = writeAtomic(filepath.Join(s.root, "tmp"), p, b)
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// GetRecordOf decodes the record of owner under kind and key into v. It
// returns an error wrapping ErrNotFound when there is none. A read is a
// use: it makes the record (and so its owner's group) recent for GC.
func (s *Store) GetRecordOf(owner v1.Hash, kind, key string, v any) error {
	p, err := s.recordPath(owner, kind, key)
	if err != nil {
		return err
	}
	mtime, err := readRecord(p, v)
	if err != nil {
		return fmt.Errorf("record %s %q: %w", kind, key, err)
	}
	touch(p, mtime)
	return nil
}

// readRecord decodes the record at p into v and returns its mtime.
func readRecord(p string, v any) (time.Time, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, ErrNotFound
	}
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return time.Time{}, err
	}
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return time.Time{}, err
	}
	return info.ModTime(), nil
}

// ScanRecords decodes each record of kind in turn and calls fn with it,
// until fn returns true (found: that record is touched, as a use) or the
// records run out. A record that vanishes under the scan (GC) is skipped.
// It costs a directory read and a file read per record: for kinds with a
// few records each, such as one per rewritten index of a repository.
func ScanRecords[T any](s *Store, kind string, fn func(T) bool) error {
	if !validKind(kind) {
		return fmt.Errorf("bad record kind %q", kind)
	}
	dir := filepath.Join(s.root, "records", kind)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("scan records %s: %w", kind, err)
	}
	for _, e := range entries {
		var v T
		p := filepath.Join(dir, e.Name())
		mtime, err := readRecord(p, &v)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("scan records %s: %w", kind, err)
		}
		if fn(v) {
			touch(p, mtime)
			return nil
		}
	}
	return nil
}

func writeAtomic(tmpDir, dst string, b []byte) error {
	f, err := os.CreateTemp(tmpDir, "record-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}
