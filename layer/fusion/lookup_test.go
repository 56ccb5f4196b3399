package fusion

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/tower-reg/tower-reg/internal/s3test"
)

// TestMountColdOpenRequests counts, in the S3 server's access log, the
// requests each open of a file costs on a fresh mount. The old lookup
// sent a one-key LIST ("a directory?"), a HEAD, then the GET: 3 a file.
func TestMountColdOpenRequests(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "cold")
	const small, big = 50, 1100 // big: past one listing page
	for i := range small {
		srv.WriteObject(t, b, fmt.Sprintf("f%03d", i), []byte("small file"))
	}
	for i := range big {
		srv.WriteObject(t, b, fmt.Sprintf("big/k%05d", i), []byte("x"))
	}
	srv.WriteObject(t, b, "big/sub/y", []byte("y"))
	// Long TTLs: a loaded machine must not expire a listing mid-test.
	m := mountOn(t, srv, map[string]string{DirTTLEnv: "1m", AttrTTLEnv: "1m"}, b)

	seen := len(srv.Requests(t))
	step := func(t *testing.T, what string, do func() error) []string {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		all := srv.Requests(t)
		var ops []string
		for _, r := range all[seen:] {
			ops = append(ops, r.Op)
		}
		seen = len(all)
		return ops
	}
	read := func(parts ...string) func() error {
		return func() error {
			data, err := os.ReadFile(m.path(append([]string{b}, parts...)...))
			if err == nil && len(data) == 0 {
				err = fmt.Errorf("empty")
			}
			return err
		}
	}
	stat := func(parts ...string) func() error {
		return func() error { _, err := os.Stat(m.path(append([]string{b}, parts...)...)); return err }
	}

	tests := []struct {
		name string
		do   func() error
		want []string
	}{
		// The directory is listed once; the lookup is answered from it.
		{"first cold open", read("f000"), []string{"ListObjectsV2", "GetObject"}},
		// Its siblings cost their GET alone.
		{"second cold open", read("f001"), []string{"GetObject"}},
		{"a name that is not there", func() error {
			if _, err := os.Stat(m.path(b, "nope")); !os.IsNotExist(err) {
				return fmt.Errorf("stat: %v, want ENOENT", err)
			}
			return nil
		}, nil},
		// More than a page: the lookup gives up on the listing after the
		// first page, remembers that, and probes the name: HEAD first.
		{"cold open in a big directory", read("big", "k00500"), []string{"ListObjectsV2", "HeadObject", "GetObject"}},
		{"its sibling", read("big", "k00501"), []string{"HeadObject", "GetObject"}},
		{"a directory in it", stat("big", "sub"), []string{"HeadObject", "ListObjectsV2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := step(t, tt.name, tt.do); !slices.Equal(got, tt.want) {
				t.Errorf("requests %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("every small file", func(t *testing.T) {
		got := step(t, "read all", func() error {
			for i := range small {
				if err := read(fmt.Sprintf("f%03d", i))(); err != nil {
					return err
				}
			}
			return nil
		})
		// The kernel keeps nothing between opens (no page cache on
		// this mount's files is assumed): a GET each at most.
		if len(got) > small || slices.ContainsFunc(got, func(op string) bool { return op != "GetObject" }) {
			t.Errorf("%d requests for %d files: %q", len(got), small, got)
		}
	})
}

// TestMountConcurrentLookups: lookups that arrive together on a cold
// directory share one listing.
func TestMountConcurrentLookups(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	b := srv.Bucket(t, "together")
	const n = 32
	for i := range n {
		srv.WriteObject(t, b, fmt.Sprintf("d/f%02d", i), []byte("x"))
	}
	m := mountOn(t, srv, map[string]string{DirTTLEnv: "1m", AttrTTLEnv: "1m"}, b)
	if _, err := os.Stat(m.path(b, "d")); err != nil {
		t.Fatal(err)
	}
	seen := len(srv.Requests(t))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := os.Stat(m.path(b, "d", fmt.Sprintf("f%02d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var ops []string
	for _, r := range srv.Requests(t)[seen:] {
		ops = append(ops, r.Op)
	}
	if !slices.Equal(ops, []string{"ListObjectsV2"}) {
		t.Errorf("%d stats at once sent %q, want one listing", n, ops)
	}
}
