package s3test

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Request is one line of the server's access log.
type Request struct {
	// Op is the S3 operation: GetObject, HeadObject, ListObjectsV2...
	Op string
	// Key is the object key, "-" for bucket operations.
	Key string
}

func (r Request) String() string { return r.Op + " " + r.Key }

// accessLine picks the operation and the key out of an access log line:
// "owner bucket [time zone] ip requester id s3_Op key ...".
var accessLine = regexp.MustCompile(`\] \S+ \S+ \S+ s3_(\w+) (\S+)`)

// Requests returns the requests the server has logged, oldest first. It
// makes one ListBuckets request itself (logged as ListAllMyBuckets) and
// waits until the log shows it, so that every request answered before
// the call is in; those requests are left out of the answer.
func (s *Server) Requests(tb testing.TB) []Request {
	tb.Helper()
	const marker = "ListAllMyBuckets"
	isMarker := func(r Request) bool { return r.Op == marker }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := countFunc(s.read(tb), isMarker)
	if _, err := s.Client.ListBuckets(ctx); err != nil {
		tb.Fatalf("list buckets: %v", err)
	}
	for {
		// The read that shows the marker is the answer: one read a poll.
		all := s.read(tb)
		if countFunc(all, isMarker) > before {
			return slices.DeleteFunc(all, isMarker)
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("the access log %s does not show the ListBuckets request", s.accessLog)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func countFunc[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}

func (s *Server) read(tb testing.TB) []Request {
	tb.Helper()
	b, err := os.ReadFile(s.accessLog)
	if err != nil {
		tb.Fatalf("access log: %v", err)
	}
	var out []Request
	for _, line := range strings.Split(string(b), "\n") {
		if m := accessLine.FindStringSubmatch(line); m != nil {
			out = append(out, Request{Op: m[1], Key: m[2]})
		}
	}
	return out
}
