package token

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

const (
	// DefaultTTL is a token's life when the config sets none. A token is
	// handed to a pod spec or a pipeline that may start its tasks hours
	// later, often overnight: a day covers "issued this morning, pulled
	// until tomorrow morning". It is still a bearer name that pulls with
	// the developer's registry credentials, often through a public tunnel,
	// so a name pasted into a CI log or a ticket should stop working the
	// next day rather than last.
	DefaultTTL = 24 * time.Hour
	// DefaultKeepExpired is how long an expired token is still known as
	// expired (so a late pull hears "expired at …" rather than "unknown")
	// before Purge forgets it. Only its expiry and image are kept that long:
	// its layers and config, env included, go at expiry.
	DefaultKeepExpired = 7 * 24 * time.Hour

	fileVersion = 1
	dirPerm     = 0o700
	filePerm    = 0o600
)

// Upstream is the image a token stands for, as resolved when it was issued.
type Upstream struct {
	// Registry is the upstream registry host ("index.docker.io", "quay.io",
	// "127.0.0.1:5000").
	Registry string `json:"registry"`
	// Repository is the repository inside it, as the token's target image
	// names it ("library/busybox", "nextflow/bash").
	Repository string `json:"repository"`
	// Reference is the tag or digest the request asked for ("latest").
	Reference string `json:"reference"`
	// Digest is the manifest or index that Reference resolved to; the token
	// pulls exactly that, whatever the tag does later.
	Digest v1.Hash `json:"digest"`
}

// Record is what a token stands for.
type Record struct {
	// Short is the token's short form, for messages and the dashboard.
	Short string   `json:"short"`
	Image Upstream `json:"image"`
	// Layers are the token's own layers, fetched and stored; or else
	// Generation is the ID of the daemon layer generation the token pins.
	Layers     []layer.Built `json:"layers,omitempty"`
	Generation string        `json:"generation,omitempty"`
	// Config is the token's change to its image's config, nil for none.
	// Records saved before it was a layer.Change omit its empty fields,
	// which read back as the same nil lists.
	Config  *layer.Change `json:"config,omitempty"`
	Created time.Time     `json:"created"`
	Expires time.Time     `json:"expires"`
	// Pulls counts CountPull calls. It is saved by Flush and Purge, so a
	// crash can lose the latest counts, never a token.
	Pulls int64 `json:"pulls"`
}

func (r Record) clone() Record {
	r.Layers = slices.Clone(r.Layers)
	if r.Config != nil {
		c := *r.Config
		c.Entrypoint = slices.Clone(c.Entrypoint)
		c.Cmd = slices.Clone(c.Cmd)
		c.Env = slices.Clone(c.Env)
		r.Config = &c
	}
	return r
}

// Errors of Lookup; see UnknownError and ExpiredError.
var (
	ErrUnknown = errors.New("unknown container token")
	ErrExpired = errors.New("container token expired")
)

// UnknownError is a token the store never issued, or forgot. It wraps
// ErrUnknown.
type UnknownError struct {
	// Short is the short form of the token as asked.
	Short string
}

func (e *UnknownError) Error() string {
	if e.Short == "…" {
		return "unknown container token"
	}
	return "container token " + e.Short + " is unknown"
}

func (e *UnknownError) Unwrap() error { return ErrUnknown }

// ExpiredError is a token past its expiry. It wraps ErrExpired.
type ExpiredError struct {
	Short     string
	ExpiredAt time.Time
}

func (e *ExpiredError) Error() string {
	return "container token " + e.Short + " expired at " + e.ExpiredAt.UTC().Format(time.RFC3339)
}

func (e *ExpiredError) Unwrap() error { return ErrExpired }

// Options tune a Store. Zero fields take the defaults.
type Options struct {
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Rand is the source of tokens (crypto/rand when nil).
	Rand io.Reader
	// Log receives what Open skips and Purge removes (discarded when nil).
	Log *slog.Logger
	// KeepExpired is how long expired tokens are remembered as such
	// (DefaultKeepExpired when zero).
	KeepExpired time.Duration
}

// Store keeps tokens in memory and one file per token in a directory. It is
// safe for concurrent use. Disk writes happen under the store's lock: tokens
// are issued rarely, and one lock keeps a file from being written twice at
// once or brought back after Purge.
type Store struct {
	dir  string
	now  func() time.Time
	rand io.Reader
	log  *slog.Logger
	keep time.Duration

	mu      sync.Mutex
	entries map[hashKey]*entry
}

type entry struct {
	hash  hashKey
	rec   Record
	tomb  bool // expired and purged: only Short, Image and times are left
	dirty bool // Pulls changed since the last write
}

// diskRecord is a token's file. The token itself is never written.
type diskRecord struct {
	Version   int    `json:"version"`
	Hash      string `json:"sha256"`
	Tombstone bool   `json:"tombstone,omitempty"`
	Record
}

// Open opens the token store in dir, creating it if needed, and loads every
// token saved there. Expired tokens are purged; unreadable files are logged
// and left alone, so that one bad file does not stop the daemon.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	s := &Store{dir: dir, now: opts.Now, rand: opts.Rand, log: opts.Log, keep: opts.KeepExpired, entries: map[hashKey]*entry{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keep <= 0 {
		s.keep = DefaultKeepExpired
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("open token store: %w", err)
	}
	// The directory may predate us with looser permissions; the records
	// hold env values and the images a developer pulls.
	if err := os.Chmod(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("open token store: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open token store: %w", err)
	}
	for _, de := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := de.Name()
		if strings.HasPrefix(name, ".tmp-") {
			// A write interrupted by a crash: never renamed, so never a
			// token.
			os.Remove(filepath.Join(dir, name))
			continue
		}
		e, err := s.load(name)
		if err != nil {
			s.log.Warn("token store: skipping file", "file", name, "error", err)
			continue
		}
		if e != nil {
			s.entries[e.hash] = e
		}
	}
	if _, err := s.Purge(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) load(name string) (*entry, error) {
	hexHash, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return nil, nil
	}
	var key hashKey
	if b, err := hex.DecodeString(hexHash); err != nil || len(b) != len(key) {
		return nil, nil
	} else {
		copy(key[:], b)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return nil, err
	}
	var d diskRecord
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if d.Version != fileVersion {
		return nil, fmt.Errorf("version %d, want %d", d.Version, fileVersion)
	}
	if d.Hash != hexHash {
		return nil, errors.New("file name and hash differ")
	}
	return &entry{hash: key, rec: d.Record, tomb: d.Tombstone}, nil
}

func (s *Store) path(h hashKey) string {
	return filepath.Join(s.dir, hex.EncodeToString(h[:])+".json")
}

// write saves e atomically: a temporary file, synced, renamed over the old
// one, then the directory synced so the rename itself survives a crash.
func (s *Store) write(ctx context.Context, e *entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(diskRecord{Version: fileVersion, Hash: hex.EncodeToString(e.hash[:]), Tombstone: e.tomb, Record: e.rec}, "", "  ")
	if err != nil {
		return fmt.Errorf("save token %s: %w", e.rec.Short, err)
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("save token %s: %w", e.rec.Short, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(filePerm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(e.hash))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("save token %s: %w", e.rec.Short, err)
	}
	e.dirty = false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Issue makes a new token for rec, valid for ttl (DefaultTTL when not
// positive), saves it and returns it with the record as stored. rec must
// name an image, and either layers or a generation but not both; Short,
// Created, Expires and Pulls are set here.
func (s *Store) Issue(ctx context.Context, rec Record, ttl time.Duration) (Token, Record, error) {
	if err := checkRecord(rec); err != nil {
		return "", Record{}, fmt.Errorf("issue token: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var tok Token
	for {
		t, err := newToken(s.rand)
		if err != nil {
			return "", Record{}, err
		}
		if _, taken := s.entries[hashOf(string(t))]; !taken {
			tok = t
			break
		}
	}
	now := s.now().UTC()
	rec = rec.clone()
	rec.Short = tok.String()
	rec.Created = now
	// Whole seconds: the answer shows the expiry in RFC 3339, and the
	// token must not outlive what it said by a fraction.
	rec.Expires = now.Add(ttl).Truncate(time.Second)
	rec.Pulls = 0
	e := &entry{hash: hashOf(string(tok)), rec: rec}
	if err := s.write(ctx, e); err != nil {
		return "", Record{}, err
	}
	s.entries[e.hash] = e
	return tok, rec.clone(), nil
}

func checkRecord(r Record) error {
	switch {
	case r.Image.Registry == "" || r.Image.Repository == "":
		return errors.New("record names no image")
	case r.Image.Digest.Algorithm != "sha256" || len(r.Image.Digest.Hex) != 64:
		return fmt.Errorf("image digest %q is not a sha256 digest", r.Image.Digest)
	case len(r.Layers) == 0 && r.Generation == "":
		return errors.New("record has neither layers nor a layer generation")
	case len(r.Layers) > 0 && r.Generation != "":
		return errors.New("record has both layers and a layer generation")
	}
	return nil
}

// Lookup returns the record of tok. An unknown token is an *UnknownError,
// an expired one an *ExpiredError with its expiry.
func (s *Store) Lookup(tok string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(tok)
	if err != nil {
		return Record{}, err
	}
	return e.rec.clone(), nil
}

// CountPull adds one to tok's pull counter and returns the new count. The
// count reaches the disk with the next Flush or Purge.
func (s *Store) CountPull(tok string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(tok)
	if err != nil {
		return 0, err
	}
	e.rec.Pulls++
	e.dirty = true
	return e.rec.Pulls, nil
}

// find looks tok up by its sha256 and confirms with a constant-time
// compare: the map lookup's timing depends on the hash alone, which tells
// an attacker nothing about tokens that exist.
func (s *Store) find(tok string) (*entry, error) {
	short := Short(tok)
	if !wellFormed(tok) {
		return nil, &UnknownError{Short: short}
	}
	h := hashOf(tok)
	e, ok := s.entries[h]
	if !ok || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 {
		return nil, &UnknownError{Short: short}
	}
	if !e.live(s.now()) {
		return nil, &ExpiredError{Short: e.rec.Short, ExpiredAt: e.rec.Expires}
	}
	return e, nil
}

// live reports whether the token may pull at now: not purged, not expired.
func (e *entry) live(now time.Time) bool { return !e.tomb && now.Before(e.rec.Expires) }

// List returns the live tokens' records, oldest first, for the dashboard
// and the status API.
func (s *Store) List() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []Record
	for _, e := range s.entries {
		if e.live(now) {
			out = append(out, e.rec.clone())
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Short, b.Short))
	})
	return out
}

// Live counts the live tokens, as List would list them.
func (s *Store) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, e := range s.entries {
		if e.live(now) {
			n++
		}
	}
	return n
}

// Flush saves the pull counts that changed since the last save.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, e := range s.entries {
		if e.dirty && !e.tomb {
			errs = append(errs, s.write(ctx, e))
		}
	}
	return errors.Join(errs...)
}

// Purge drops the layers and config of tokens that expired, keeping their
// expiry for the message; forgets tokens expired longer than KeepExpired
// ago; and saves changed pull counts. It returns the records of the tokens
// that expired since the last Purge, as they were, so the caller can
// announce them. Call it from a ticker; Open calls it too.
func (s *Store) Purge(ctx context.Context) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var expired []Record
	var errs []error
	for h, e := range s.entries {
		switch {
		case e.tomb && now.Sub(e.rec.Expires) >= s.keep:
			if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("purge token %s: %w", e.rec.Short, err))
				continue
			}
			delete(s.entries, h)
			s.log.Debug("token forgotten", "token", e.rec.Short, "expired", e.rec.Expires)
		case !e.tomb && !e.live(now):
			expired = append(expired, e.rec.clone())
			e.tomb = true
			// The env may carry secrets and nothing will pull these
			// layers again: keep only what the message needs.
			e.rec = Record{Short: e.rec.Short, Image: e.rec.Image, Created: e.rec.Created, Expires: e.rec.Expires, Pulls: e.rec.Pulls}
			if err := s.write(ctx, e); err != nil {
				errs = append(errs, err)
			}
			s.log.Info("token expired", "token", e.rec.Short, "image", e.rec.Image.Registry+"/"+e.rec.Image.Repository, "pulls", e.rec.Pulls)
		case e.dirty && !e.tomb:
			errs = append(errs, s.write(ctx, e))
		}
	}
	slices.SortFunc(expired, func(a, b Record) int { return a.Expires.Compare(b.Expires) })
	return expired, errors.Join(errs...)
}
