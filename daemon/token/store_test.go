package token

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 123456789, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func digest(s string) v1.Hash {
	h, _, err := v1.SHA256(strings.NewReader(s))
	if err != nil {
		panic(err)
	}
	return h
}

func layersRecord() Record {
	return Record{
		Image:  Upstream{Registry: "quay.io", Repository: "nextflow/bash", Reference: "latest", Digest: digest("manifest")},
		Layers: []layer.Built{{TarDigest: digest("tar"), GzipDigest: digest("gzip"), GzipSize: 42, HasEntry: true, Files: 3}},
		Config: &layer.Change{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "true"}, Env: []string{"SECRET=hunter2"}, WorkingDir: "/work"},
	}
}

func generationRecord() Record {
	return Record{
		Image:      Upstream{Registry: "index.docker.io", Repository: "library/busybox", Reference: "1.36", Digest: digest("index")},
		Generation: "gen-" + digest("set").Hex,
	}
}

func openStore(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var tokenRe = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

func TestIssueAndLookup(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		ttl  time.Duration
		life time.Duration
	}{
		{"layers, default ttl", layersRecord(), 0, DefaultTTL},
		{"generation, one hour", generationRecord(), time.Hour, time.Hour},
		{"negative ttl is default", generationRecord(), -time.Minute, DefaultTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := openStore(t, t.TempDir(), c)
			tok, rec, err := s.Issue(context.Background(), tt.rec, tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if len(tok.Secret()) != 32 || !tokenRe.MatchString(tok.Secret()) {
				t.Errorf("token %q: want 32 characters that fit a registry path", tok.Secret())
			}
			wantExp := c.Now().Add(tt.life).Truncate(time.Second)
			if !rec.Expires.Equal(wantExp) || !rec.Created.Equal(c.Now()) {
				t.Errorf("created %s expires %s, want %s and %s", rec.Created, rec.Expires, c.Now(), wantExp)
			}
			if rec.Short != tok.Secret()[:6]+"…" {
				t.Errorf("Short = %q for %q", rec.Short, tok.Secret())
			}
			got, err := s.Lookup(tok.Secret())
			if err != nil {
				t.Fatal(err)
			}
			want := tt.rec
			want.Short, want.Created, want.Expires = rec.Short, rec.Created, rec.Expires
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Lookup =\n%+v\nwant\n%+v", got, want)
			}
			// Just before the expiry it still works; at the expiry it is
			// expired.
			c.Add(wantExp.Sub(c.Now()) - time.Nanosecond)
			if _, err := s.Lookup(tok.Secret()); err != nil {
				t.Errorf("a nanosecond before expiry: %v", err)
			}
			c.Add(time.Nanosecond)
			_, err = s.Lookup(tok.Secret())
			var ee *ExpiredError
			if !errors.As(err, &ee) || !ee.ExpiredAt.Equal(wantExp) || !errors.Is(err, ErrExpired) {
				t.Fatalf("at expiry Lookup = %v, want an ExpiredError at %s", err, wantExp)
			}
			wantMsg := "container token " + tok.Secret()[:6] + "… expired at " + wantExp.Format(time.RFC3339)
			if err.Error() != wantMsg {
				t.Errorf("message %q, want %q", err, wantMsg)
			}
		})
	}
}

func TestIssueRefusesBadRecords(t *testing.T) {
	both := layersRecord()
	both.Generation = "g"
	noImage := generationRecord()
	noImage.Image.Repository = ""
	badDigest := generationRecord()
	badDigest.Image.Digest = v1.Hash{}
	neither := layersRecord()
	neither.Layers = nil
	tests := []struct {
		name string
		rec  Record
		msg  string
	}{
		{"both", both, "both layers and a layer generation"},
		{"neither", neither, "neither layers nor"},
		{"no image", noImage, "names no image"},
		{"bad digest", badDigest, "not a sha256 digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, newClock())
			if _, _, err := s.Issue(context.Background(), tt.rec, 0); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Issue = %v, want %q", err, tt.msg)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("refused Issue left %d files", len(ents))
			}
		})
	}
}

func TestIssueRandFailure(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{Rand: iotest.ErrReader(errors.New("no entropy"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Issue(context.Background(), layersRecord(), 0); err == nil || !strings.Contains(err.Error(), "no entropy") {
		t.Errorf("Issue = %v, want the rand error", err)
	}
}

func TestLookupUnknown(t *testing.T) {
	s := openStore(t, t.TempDir(), newClock())
	tok, _, err := s.Issue(context.Background(), layersRecord(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// The same token with its last character changed: well formed, unknown.
	sec := tok.Secret()
	last := byte('a')
	if sec[31] == 'a' {
		last = 'b'
	}
	near := sec[:31] + string(last)
	tests := []struct{ tok, msg string }{
		{near, "container token " + near[:6] + "… is unknown"},
		{"", "unknown container token"},
		{"short", "container token short… is unknown"},
		// Upper case is not a token's: nothing of it is shown. (It starts
		// with a letter: digits 2-7 are token characters in either case.)
		{"A" + strings.ToUpper(sec[1:]), "unknown container token"},
		{sec + "a", "container token " + sec[:6] + "… is unknown"},
		{"../../etc/passwd", "unknown container token"},
		{"abc\x1b[31m", "container token abc… is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.tok, func(t *testing.T) {
			_, err := s.Lookup(tt.tok)
			var ue *UnknownError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnknown) {
				t.Fatalf("Lookup = %v, want an UnknownError", err)
			}
			if err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err, tt.msg)
			}
			if _, err := s.CountPull(tt.tok); !errors.As(err, &ue) {
				t.Errorf("CountPull = %v, want an UnknownError", err)
			}
		})
	}
}

func TestSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "tokens")
	c := newClock()
	s := openStore(t, dir, c)
	ctx := context.Background()
	tok1, rec1, err := s.Issue(ctx, layersRecord(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tok2, rec2, err := s.Issue(ctx, generationRecord(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.CountPull(tok1.Secret()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Counted but not flushed: lost on restart, which the doc allows.
	if n, err := s.CountPull(tok2.Secret()); err != nil || n != 1 {
		t.Fatalf("CountPull = %d, %v", n, err)
	}

	s2 := openStore(t, dir, c)
	got1, err := s2.Lookup(tok1.Secret())
	if err != nil {
		t.Fatal(err)
	}
	rec1.Pulls = 3
	if !reflect.DeepEqual(got1, rec1) {
		t.Errorf("after restart\n%+v\nwant\n%+v", got1, rec1)
	}
	got2, err := s2.Lookup(tok2.Secret())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got2, rec2) {
		t.Errorf("after restart\n%+v\nwant\n%+v", got2, rec2)
	}
	// Same creation time: List breaks the tie by the short form.
	first, second := rec1.Short, rec2.Short
	if first > second {
		first, second = second, first
	}
	if l := s2.List(); len(l) != 2 || l[0].Short != first || l[1].Short != second {
		t.Errorf("List = %+v", l)
	}

	// Permissions, and no whole token anywhere on disk.
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("%d files, want 2", len(ents))
	}
	for _, e := range ents {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for _, tok := range []Token{tok1, tok2} {
			if bytes.Contains(b, []byte(tok.Secret())) {
				t.Errorf("%s holds a whole token", e.Name())
			}
		}
	}
}

func TestOpenTightensAndSkips(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openStore(t, dir, c)
	tok, _, err := s.Issue(context.Background(), layersRecord(), 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := map[string]string{
		strings.Repeat("0", 64) + ".json": "{not json",
		strings.Repeat("1", 64) + ".json": `{"version":99}`,
		strings.Repeat("2", 64) + ".json": `{"version":1,"sha256":"other"}`,
		"README":                          "not a token",
	}
	for name, body := range junk {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, ".tmp-12345")
	if err := os.WriteFile(tmp, []byte("half a write"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s2, err := Open(context.Background(), dir, Options{Now: c.Now, Log: slogTo(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lookup(tok.Secret()); err != nil {
		t.Errorf("good token lost next to bad files: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover temp file still there: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	if n := strings.Count(logs.String(), "skipping file"); n != 3 {
		t.Errorf("logged %d skipped files, want 3:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), tok.Secret()) {
		t.Error("log holds a whole token")
	}
}

func TestPurge(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	ctx := context.Background()
	s := openStore(t, dir, c)
	short, _, err := s.Issue(ctx, layersRecord(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	long, _, err := s.Issue(ctx, generationRecord(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.CountPull(short.Secret())

	if exp, err := s.Purge(ctx); err != nil || len(exp) != 0 {
		t.Fatalf("early Purge = %v, %v", exp, err)
	}
	c.Add(2 * time.Hour)
	exp, err := s.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != 1 || exp[0].Short != short.String() || exp[0].Config == nil || exp[0].Pulls != 1 {
		t.Fatalf("Purge = %+v, want the short-lived token's whole record", exp)
	}
	if exp, _ := s.Purge(ctx); len(exp) != 0 {
		t.Errorf("second Purge reported %d tokens again", len(exp))
	}
	// The purged token's secrets are gone from the disk, its expiry kept.
	b, err := os.ReadFile(s.path(hashOf(short.Secret())))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("hunter2")) || bytes.Contains(b, []byte(digest("gzip").Hex)) {
		t.Errorf("purged record still holds its env or layers:\n%s", b)
	}
	if l := s.List(); len(l) != 1 || l[0].Short != long.String() {
		t.Errorf("List = %+v, want the long-lived token only", l)
	}

	// After a restart the expired token still says when it expired.
	s2 := openStore(t, dir, c)
	var ee *ExpiredError
	if _, err := s2.Lookup(short.Secret()); !errors.As(err, &ee) {
		t.Errorf("after restart Lookup = %v, want ExpiredError", err)
	}
	// Expired while the daemon was down: Open purges it.
	c.Add(47 * time.Hour)
	s3 := openStore(t, dir, c)
	if _, err := s3.Lookup(long.Secret()); !errors.As(err, &ee) {
		t.Errorf("Lookup = %v, want ExpiredError", err)
	}
	b, _ = os.ReadFile(s3.path(hashOf(long.Secret())))
	if bytes.Contains(b, []byte(`"generation"`)) {
		t.Errorf("Open did not purge the expired record:\n%s", b)
	}
	// Past KeepExpired both are forgotten: unknown, and no file left.
	c.Add(DefaultKeepExpired)
	if _, err := s3.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	var ue *UnknownError
	for _, tok := range []Token{short, long} {
		if _, err := s3.Lookup(tok.Secret()); !errors.As(err, &ue) {
			t.Errorf("Lookup = %v, want UnknownError", err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left after everything was forgotten", len(ents))
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openStore(t, t.TempDir(), newClock())
	ctx := context.Background()
	var wg sync.WaitGroup
	toks := make([]Token, 8)
	for i := range toks {
		wg.Go(func() {
			tok, _, err := s.Issue(ctx, generationRecord(), 0)
			if err != nil {
				t.Error(err)
				return
			}
			toks[i] = tok
			for range 50 {
				if _, err := s.CountPull(tok.Secret()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			s.List()
			if _, err := s.Purge(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	seen := map[Token]bool{}
	for _, tok := range toks {
		if seen[tok] {
			t.Fatalf("token %v issued twice", tok)
		}
		seen[tok] = true
		rec, err := s.Lookup(tok.Secret())
		if err != nil || rec.Pulls != 50 {
			t.Errorf("Lookup = %d pulls, %v; want 50", rec.Pulls, err)
		}
	}
}

func TestTokenNeverPrintedWhole(t *testing.T) {
	tok, err := newToken(strings.NewReader(strings.Repeat("\xff\x00\x10", 10)))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slogTo(&logs).Info("issued", "token", tok)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %s %q", tok, tok, tok), logs.String()} {
		if strings.Contains(s, tok.Secret()) {
			t.Errorf("%q shows the whole token", s)
		}
		if !strings.Contains(s, tok.Secret()[:6]+"…") {
			t.Errorf("%q lacks the short form", s)
		}
	}
	if !wellFormed(tok.Secret()) {
		t.Errorf("newToken made %q, which wellFormed refuses", tok.Secret())
	}
}
