package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// recordFixture is a store of four blobs and five records, each last used
// some time ago, in kind "t":
//
//	oGone  6h    owned by a blob the store does not hold
//	rOld   5h    no owner
//	b0     4h    blob
//	b1     3h    blob, owns o1 (10m): the group was used 10m ago
//	b2     2h    blob, owns o2 (2h30)
//	b3     1h    blob
//	rNew   30m   no owner
//
// Each file costs a block, and so does the directory records/t: 10 blocks.
type recordFixture struct {
	s     *Store
	blobs map[string]v1.Hash
	// recs gives each record's owner (the zero hash for none) and key.
	recs map[string]recordName
}

type recordName struct {
	owner v1.Hash
	key   string
}

func newRecordFixture(t *testing.T) *recordFixture {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &recordFixture{s: s, blobs: map[string]v1.Hash{}, recs: map[string]recordName{}}
	for i, age := range []time.Duration{4 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour} {
		h, err := s.PutBytes(t.Context(), fmt.Appendf(nil, "blob %d", i))
		if err != nil {
			t.Fatal(err)
		}
		setUsed(t, s, h, time.Now().Add(-age))
		f.blobs[fmt.Sprintf("b%d", i)] = h
	}
	gone := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	for _, r := range []struct {
		name  string
		owner v1.Hash
		age   time.Duration
	}{
		{"oGone", gone, 6 * time.Hour},
		{"rOld", noOwner, 5 * time.Hour},
		{"o1", f.blobs["b1"], 10 * time.Minute},
		{"o2", f.blobs["b2"], 150 * time.Minute},
		{"rNew", noOwner, 30 * time.Minute},
	} {
		f.recs[r.name] = recordName{r.owner, r.name}
		if err := s.PutRecordOf(t.Context(), r.owner, "t", r.name, r.name); err != nil {
			t.Fatal(err)
		}
		p, _ := s.recordPath(r.owner, "t", r.name)
		when := time.Now().Add(-r.age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// left lists what the store still holds, by fixture name, sorted.
func (f *recordFixture) left(t *testing.T) []string {
	t.Helper()
	var names []string
	for n, h := range f.blobs {
		if _, err := f.s.Stat(h); err == nil {
			names = append(names, n)
		}
	}
	for n, r := range f.recs {
		var v string
		err := f.s.GetRecordOf(r.owner, "t", r.key, &v)
		switch {
		case err == nil:
			names = append(names, n)
		case !errors.Is(err, ErrNotFound):
			t.Fatalf("record %s: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.s.Root(), "records", "t")); err == nil {
		names = append(names, "dir")
	}
	slices.Sort(names)
	return names
}

// TestGCRecords: records count toward the limit, at a block each, and go
// least recently used first; a record goes with the blob that owns it,
// and a recent record keeps its blob.
func TestGCRecords(t *testing.T) {
	tests := []struct {
		name      string
		max       int64
		grace     time.Duration
		keep      []string // blobs the keep func keeps
		pinRecord []string
		read      []string // records read (GetRecord) just before the GC
		want      []string
	}{
		{name: "under the limit: nothing", max: 10 * block,
			want: []string{"b0", "b1", "b2", "b3", "dir", "o1", "o2", "oGone", "rNew", "rOld"}},
		{name: "records count, oldest first", max: 7 * block,
			want: []string{"b1", "b2", "b3", "dir", "o1", "o2", "rNew"}},
		{name: "a record goes with its blob", max: 5 * block,
			want: []string{"b1", "b3", "dir", "o1", "rNew"}},
		{name: "a recent record keeps its blob", max: 3 * block,
			want: []string{"b1", "dir", "o1"}},
		{name: "the records of a kept blob go on their own", max: 5 * block, keep: []string{"b2"},
			want: []string{"b1", "b2", "dir", "o1", "rNew"}},
		{name: "a pinned record stays", max: 7 * block, pinRecord: []string{"rOld"},
			want: []string{"b1", "b3", "dir", "o1", "rNew", "rOld"}},
		{name: "a read makes a record recent", max: 7 * block, read: []string{"rOld"},
			want: []string{"b1", "b3", "dir", "o1", "rNew", "rOld"}},
		{name: "grace: recent files stay, even over the limit", max: 0, grace: 90 * time.Minute,
			want: []string{"b1", "b3", "dir", "o1", "rNew"}},
		{name: "everything, and the empty directory", max: 0, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRecordFixture(t)
			keep := map[v1.Hash]bool{}
			for _, n := range tt.keep {
				keep[f.blobs[n]] = true
			}
			for _, n := range tt.pinRecord {
				unpin, err := f.s.PinRecord("t", f.recs[n].key)
				if err != nil {
					t.Fatal(err)
				}
				defer unpin()
			}
			for _, n := range tt.read {
				var v string
				if err := f.s.GetRecord("t", f.recs[n].key, &v); err != nil {
					t.Fatal(err)
				}
			}
			st, err := f.s.GC(t.Context(), tt.max, tt.grace, func(h v1.Hash) bool { return keep[h] })
			if err != nil {
				t.Fatal(err)
			}
			got := f.left(t)
			if !slices.Equal(got, tt.want) {
				t.Errorf("left %v, want %v", got, tt.want)
			}
			if want := int64(len(tt.want)) * block; st.Before != 10*block || st.After != want {
				t.Errorf("stats %+v, want before %d, after %d", st, 10*block, want)
			}
		})
	}
}

// TestRecordCost: a record costs what it takes on disk, a block at least,
// and the store says so to OnWrite, as it does for blobs.
func TestRecordCost(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var costs []int64
	s.OnWrite(func(c int64) { costs = append(costs, c) })
	if err := s.PutRecord(t.Context(), "t", "small", true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(t.Context(), "t", "big", strings.Repeat("a", 5000)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBytes(t.Context(), []byte("a blob")); err != nil {
		t.Fatal(err)
	}
	if want := []int64{block, 2 * block, block}; !slices.Equal(costs, want) {
		t.Errorf("costs %v, want %v", costs, want)
	}
}
