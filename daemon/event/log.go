package event

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
)

// Log writes each event of sub as one log line until ctx ends or sub is
// closed: the headless form of the dashboard.
func Log(ctx context.Context, sub *Subscription, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			logOne(ctx, log, e)
		}
	}
}

func logOne(ctx context.Context, log *slog.Logger, e Event) {
	level := slog.LevelInfo
	var msg string
	var attrs []slog.Attr
	switch e := e.(type) {
	case ManifestServed:
		msg = "manifest"
		attrs = []slog.Attr{slog.String("client", e.Client), slog.String("method", e.Method),
			slog.String("repo", e.Repo), slog.String("ref", e.Reference), slog.Int("status", e.Status),
			slog.Bool("cached", e.Cached), slog.Duration("took", e.Duration)}
		if e.Digest != "" {
			attrs = append(attrs, slog.String("upstream", e.Upstream), slog.String("digest", e.Digest))
		}
		if len(e.Platforms) > 0 {
			attrs = append(attrs, slog.Any("platforms", e.Platforms))
		}
		if e.Err != "" {
			level = failedLevel(e.Method, e.Reference, e.Status)
			attrs = append(attrs, slog.String("error", e.Err))
		}
	case BlobServed:
		msg = "blob"
		attrs = []slog.Attr{slog.String("client", e.Client), slog.String("method", e.Method),
			slog.String("repo", e.Repo), slog.String("digest", e.Digest), slog.String("source", e.Source),
			slog.Int64("bytes", e.Bytes), slog.Int("status", e.Status), slog.Duration("took", e.Duration)}
		if e.Note != "" {
			attrs = append(attrs, slog.String("note", e.Note))
		}
		if e.Err != "" {
			level = failedLevel(e.Method, "", e.Status)
			attrs = append(attrs, slog.String("error", e.Err))
		}
	case LayerPacked:
		msg = "layer packed"
		attrs = []slog.Attr{slog.Int("generation", e.Generation), slog.String("source", e.Source),
			slog.String("gzipDigest", e.GzipDigest), slog.Int64("bytes", e.GzipSize),
			slog.Int("files", e.Files), slog.Any("platforms", e.Platforms), slog.Duration("took", e.Duration)}
		if e.Err != "" {
			level = slog.LevelError
			attrs = append(attrs, slog.String("error", e.Err))
		}
	case LayerReloaded:
		msg = "layer reloaded"
		attrs = []slog.Attr{slog.String("source", e.Source), slog.String("trigger", e.Trigger),
			slog.Int("generation", e.Generation), slog.Bool("changed", e.Changed),
			slog.String("old", e.OldDigest), slog.String("new", e.NewDigest),
			slog.Int("files", e.Files), slog.Int64("bytes", e.Bytes), slog.Duration("took", e.Duration)}
		if !e.Changed && e.Err == "" {
			msg = "layer unchanged"
		}
		if e.Err != "" {
			level = slog.LevelError
			msg = "layer reload failed; the previous generation keeps serving"
			attrs = append(attrs, slog.String("error", e.Err))
		}
	case BlobStarted:
		level, msg = slog.LevelDebug, "blob started"
		attrs = []slog.Attr{slog.String("client", e.Client), slog.String("repo", e.Repo),
			slog.String("digest", e.Digest), slog.String("source", e.Source), slog.Int64("size", e.Size)}
	case TokenIssued:
		msg = "container token issued"
		attrs = []slog.Attr{slog.String("token", e.Token), slog.String("image", e.Image),
			slog.String("target", e.TargetImage), slog.Time("expires", e.Expires), slog.Int("layers", e.Layers)}
	case TokenExpired:
		msg = "container token expired"
		attrs = []slog.Attr{slog.String("token", e.Token), slog.String("image", e.Image), slog.Time("expired", e.Expired)}
	case TunnelStatus:
		msg = "tunnel " + e.State
		attrs = []slog.Attr{slog.String("provider", e.Provider)}
		if e.URL != "" {
			attrs = append(attrs, slog.String("url", e.URL))
		}
		if e.Err != "" {
			level = slog.LevelWarn
			attrs = append(attrs, slog.String("reason", e.Err))
		}
	case OffloadStatus:
		// Debug: the offload package logs its own warning once per kind of
		// failure, and the uploads are routine.
		level, msg = slog.LevelDebug, "offload "+e.State
		attrs = []slog.Attr{slog.String("digest", e.Digest), slog.Int64("bytes", e.Bytes)}
		if e.Err != "" {
			attrs = append(attrs, slog.String("kind", e.Kind), slog.String("error", e.Err))
		}
	default:
		msg = "event"
		attrs = []slog.Attr{slog.Any("event", e)}
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

// failedLevel is the level of a failed manifest or blob answer. A 404 is
// what clients expect to get while they probe: a HEAD asks whether
// something is there, and OCI 1.1 clients look for the referrers fallback
// tag (sha256-<hex>) of each image they copy; one WARN for each of those
// drowned the real failures. A GET that finds nothing is the user's to
// see, not a fault of the daemon's: Info.
func failedLevel(method, ref string, status int) slog.Level {
	switch {
	case status != http.StatusNotFound:
		return slog.LevelWarn
	case method == http.MethodHead || referrersTag(ref):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// referrersTag reports whether ref is the referrers fallback tag of the
// OCI distribution spec: "sha256-" and a hex digest.
func referrersTag(ref string) bool {
	hex, ok := strings.CutPrefix(ref, "sha256-")
	if !ok || len(hex) != 64 {
		return false
	}
	return strings.Trim(hex, "0123456789abcdef") == ""
}
