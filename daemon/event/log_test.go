package event

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLogLevels: a failed answer is a warning, but not a 404 that clients
// expect while they probe (a HEAD, the referrers fallback tag), which is
// debug, nor a GET that finds nothing, which is info.
func TestLogLevels(t *testing.T) {
	const tag = "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	manifest := func(method, ref string, status int) ManifestServed {
		return ManifestServed{Method: method, Repo: "index.docker.io/library/busybox", Reference: ref, Status: status, Err: "no"}
	}
	blob := func(method string, status int) BlobServed {
		return BlobServed{Method: method, Repo: "index.docker.io/library/busybox", Digest: "sha256:ab", Status: status, Err: "no"}
	}
	for _, tc := range []struct {
		name string
		e    Event
		want string
	}{
		{"manifest served", ManifestServed{Method: "GET", Reference: "latest", Status: 200}, "INFO"},
		{"manifest HEAD 404", manifest("HEAD", "latest", 404), "DEBUG"},
		{"referrers tag GET 404", manifest("GET", tag, 404), "DEBUG"},
		{"manifest GET 404", manifest("GET", "latest", 404), "INFO"},
		{"sha256- tag that is no digest", manifest("GET", "sha256-latest", 404), "INFO"},
		{"manifest 401", manifest("GET", "latest", 401), "WARN"},
		{"manifest 503", manifest("GET", "latest", 503), "WARN"},
		{"blob HEAD 404", blob("HEAD", 404), "DEBUG"},
		{"blob GET 404", blob("GET", 404), "INFO"},
		{"blob 502", blob("GET", 502), "WARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			logOne(context.Background(), log, tc.e)
			if !strings.Contains(buf.String(), "level="+tc.want+" ") {
				t.Errorf("%s, want level %s", strings.TrimSpace(buf.String()), tc.want)
			}
		})
	}
}
