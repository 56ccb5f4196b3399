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
)

// Records are small JSON documents filed under a kind and a free-form key:
// which rewritten digest belongs to which upstream digest, which repository a
// rewritten manifest was made for. Keys are hashed into file names, so any
// string is a safe key.
func (s *Store) recordPath(kind, key string) (string, error) {
	if kind == "" || filepath.Base(kind) != kind {
		return "", fmt.Errorf("bad record kind %q", kind)
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.root, "records", kind, hex.EncodeToString(sum[:])), nil
}

// PutRecord stores v, JSON-encoded, under kind and key, replacing any
// previous value atomically.
func (s *Store) PutRecord(ctx context.Context, kind, key string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.recordPath(kind, key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), dirPerm); err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	return writeAtomic(filepath.Join(s.root, "tmp"), p, b)
}

// GetRecord decodes the record under kind and key into v. It returns an
// error wrapping ErrNotFound when there is none.
func (s *Store) GetRecord(kind, key string, v any) error {
	p, err := s.recordPath(kind, key)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("record %s %q: %w", kind, key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record %s: %w", kind, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("record %s %q: %w", kind, key, err)
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
