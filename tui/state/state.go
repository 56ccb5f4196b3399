package state

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// Bounds on what is kept: the dashboard runs all day, so history is a
// window, not a record (the log file is the record).
const (
	MaxPulls       = 500
	MaxLogs        = 200
	MaxGenerations = 8
	MaxRequests    = 200
	// pullGap is how long a client may be silent on a repository and
	// still be in the same pull.
	pullGap = 30 * time.Second
)

// State is everything the dashboard shows.
type State struct {
	// Status is the daemon's last status answer; HaveStatus says there
	// was one.
	Status     admin.Status
	HaveStatus bool
	// Tunnel is the last tunnel state, nil while none was reported.
	Tunnel *event.TunnelStatus

	Pulls  []*Pull // oldest first
	active map[string]*Pull
	nextID int

	Tokens []*Token // oldest first
	tokens map[string]*Token

	// Current is the generation serving; Generations the recent ones,
	// newest last; LastReload the last reload's outcome.
	Current     Generation
	Generations []Generation
	LastReload  *event.LayerReloaded
	// layerDigests are the gzip digests of every generation seen, to tell
	// the injected layer among the blobs a pull fetched.
	layerDigests map[string]bool

	Logs []LogLine
	// Events counts the events applied.
	Events int64
}

// Generation is one layer generation.
type Generation struct {
	Number     int
	Time       time.Time
	TarDigest  string
	GzipDigest string
	// Size is the common layer's compressed size; SetSize that of the
	// whole set, overlays included.
	Size    int64
	SetSize int64
	Files   int
	// Platforms maps each overlay to its gzip digest ("" when only the
	// name is known).
	Platforms map[string]string
	Trigger   string
	PackTime  time.Duration
}

// Token is a container token handed out.
type Token struct {
	Token       string
	Image       string
	TargetImage string
	Issued      time.Time
	Expires     time.Time
	Layers      int
	Pulls       int
	Expired     bool
}

// Match reports whether the token has q (lowercase) in a filtered field.
func (t *Token) Match(q string) bool { return matchAny(q, t.Token, t.Image, t.TargetImage) }

// LogLine is one warning or error shown in the log pane.
type LogLine struct {
	Time  time.Time
	Level slog.Level
	Msg   string
	Attrs string // key=value pairs
}

// Match reports whether the line has q (lowercase).
func (l LogLine) Match(q string) bool { return matchAny(q, l.Msg, l.Attrs, l.Level.String()) }

// New returns an empty state.
func New() *State {
	return &State{active: map[string]*Pull{}, tokens: map[string]*Token{}, layerDigests: map[string]bool{}}
}

// SetStatus records a status answer. It also tells what no event did:
// the tar digest of a reloaded generation, and the current generation of
// a daemon the dashboard attached to late.
func (s *State) SetStatus(st admin.Status) {
	s.Status, s.HaveStatus = st, true
	// The event stream does not replay the past: a dashboard attached
	// after the tunnel came up learns its state here.
	if t := st.Tunnel; s.Tunnel == nil && t.State != "" {
		s.Tunnel = &event.TunnelStatus{Provider: t.Provider, State: t.State, URL: t.URL, Err: t.Error}
	}
	l := st.Layer
	if l.GzipDigest == "" {
		return
	}
	g := Generation{Number: l.Generation, TarDigest: l.TarDigest, GzipDigest: l.GzipDigest, Size: l.GzipSize,
		Files: l.Files, Platforms: map[string]string{}}
	for _, p := range l.Platforms {
		g.Platforms[p] = l.PlatformDigests[p]
	}
	s.addGeneration(g)
}

// AddLog appends a warning or error line.
func (s *State) AddLog(l LogLine) {
	s.Logs = append(s.Logs, l)
	if len(s.Logs) > MaxLogs {
		s.Logs = slices.Delete(s.Logs, 0, len(s.Logs)-MaxLogs)
	}
}

// Apply folds one event into the state.
func (s *State) Apply(e event.Event) {
	s.Events++
	switch e := e.(type) {
	case event.ManifestServed:
		s.manifest(e)
	case event.BlobStarted:
		s.blobStarted(e)
	case event.BlobServed:
		s.blobServed(e)
	case event.LayerPacked:
		s.packed(e)
	case event.LayerReloaded:
		s.reloaded(e)
	case event.TokenIssued:
		t := &Token{Token: e.Token, Image: e.Image, TargetImage: e.TargetImage, Issued: e.Time, Expires: e.Expires, Layers: e.Layers}
		if old, ok := s.tokens[e.Token]; ok {
			*old = *t
			return
		}
		s.tokens[e.Token] = t
		s.Tokens = append(s.Tokens, t)
	case event.TokenExpired:
		t, ok := s.tokens[e.Token]
		if !ok {
			t = &Token{Token: e.Token, Image: e.Image, Expires: e.Expired}
			s.tokens[e.Token] = t
			s.Tokens = append(s.Tokens, t)
		}
		t.Expired = true
	case event.TunnelStatus:
		s.Tunnel = &e
		if e.Err != "" {
			s.AddLog(LogLine{Time: e.Time, Level: slog.LevelWarn, Msg: "tunnel " + e.State, Attrs: "reason=" + quote(e.Err)})
		}
	}
}

func (s *State) manifest(e event.ManifestServed) {
	key := hostOf(e.Client) + " " + e.Repo
	p := s.active[key]
	if p == nil || e.Time.Sub(p.Last) > pullGap || (isTag(e.Reference) && (p.BlobsStarted > 0 || p.Reference != e.Reference)) {
		// Events are sent when a request ends; the pull began when the
		// first one started.
		p = s.newPull(key, e.Time.Add(-e.Duration), e.Client, e.Repo, e.Reference)
	}
	p.Last = maxTime(p.Last, e.Time)
	p.addRequest(Request{Time: e.Time.Add(-e.Duration), Kind: "manifest", Method: e.Method, Ref: e.Reference,
		Digest: e.Digest, Upstream: e.Upstream, MediaType: e.MediaType, Cached: e.Cached, Status: e.Status,
		Duration: e.Duration, Err: e.Err})
	if e.Token != "" {
		p.Token = e.Token
		if t, ok := s.tokens[e.Token]; ok && e.Err == "" && e.Method == "GET" && isTag(e.Reference) {
			t.Pulls++
		}
	}
	if e.Err != "" {
		p.Err, p.ErrStatus = e.Err, e.Status
		s.AddLog(LogLine{Time: e.Time, Level: slog.LevelWarn, Msg: "manifest " + e.Reference + " failed",
			Attrs: fmt.Sprintf("repo=%s client=%s status=%d error=%s", e.Repo, e.Client, e.Status, quote(e.Err))})
		return
	}
	// The first answer names the image (a GET after a HEAD is served
	// from what the HEAD cached, and is no cache hit for the pull); the
	// platform manifests of an index that follow only add platforms.
	if p.Digest == "" {
		p.Upstream, p.Digest, p.MediaType, p.Cached = e.Upstream, e.Digest, e.MediaType, e.Cached
	}
	for _, pl := range e.Platforms {
		if !slices.Contains(p.Platforms, pl) {
			p.Platforms = append(p.Platforms, pl)
		}
	}
	if e.Config != "" && e.Method == "GET" && !slices.Contains(p.Configs, e.Config) {
		p.Configs = append(p.Configs, e.Config)
	}
}

func (s *State) newPull(key string, t time.Time, client, repo, ref string) *Pull {
	s.nextID++
	p := &Pull{ID: s.nextID, Start: t, Last: t, Client: hostOf(client), Repo: repo, Reference: ref}
	s.active[key] = p
	s.Pulls = append(s.Pulls, p)
	if len(s.Pulls) > MaxPulls {
		for _, old := range s.Pulls[:len(s.Pulls)-MaxPulls] {
			k := old.Client + " " + old.Repo
			if s.active[k] == old {
				delete(s.active, k)
			}
		}
		s.Pulls = slices.Delete(s.Pulls, 0, len(s.Pulls)-MaxPulls)
	}
	return p
}

// blobPull finds the pull a blob request belongs to; a blob with no
// manifest before it (a client that kept the manifest) starts its own.
func (s *State) blobPull(t time.Time, client, repo, digest string) *Pull {
	key := hostOf(client) + " " + repo
	p := s.active[key]
	if p == nil || t.Sub(p.Last) > pullGap {
		p = s.newPull(key, t, client, repo, digest)
	}
	return p
}

func (s *State) blobStarted(e event.BlobStarted) {
	p := s.blobPull(e.Time, e.Client, e.Repo, e.Digest)
	p.Last = maxTime(p.Last, e.Time)
	if e.Token != "" {
		p.Token = e.Token
	}
	if p.inflight == nil {
		p.inflight = map[string]int64{}
	}
	p.BlobsStarted++
	p.inflight[e.Digest] = e.Size
	if e.Size > 0 {
		p.BytesTotal += e.Size
	}
}

func (s *State) blobServed(e event.BlobServed) {
	p := s.blobPull(e.Time, e.Client, e.Repo, e.Digest)
	p.Last = maxTime(p.Last, e.Time)
	p.addRequest(Request{Time: e.Time.Add(-e.Duration), Kind: "blob", Method: e.Method, Ref: e.Digest,
		Source: e.Source, Status: e.Status, Bytes: e.Bytes, Duration: e.Duration, Err: e.Err})
	size, started := p.inflight[e.Digest]
	if started {
		delete(p.inflight, e.Digest)
		p.BlobsDone++
		if size < 0 {
			// Unknown at the start: the finished transfer tells.
			p.BytesTotal += e.Bytes
		} else if e.Bytes < size {
			// A cut transfer: its missing bytes are not to come.
			p.BytesTotal -= size - e.Bytes
		}
	}
	if e.Method == "GET" && e.Err == "" {
		p.BytesDone += e.Bytes
	}
	if e.Err != "" {
		p.Err, p.ErrStatus = e.Err, e.Status
		s.AddLog(LogLine{Time: e.Time, Level: slog.LevelWarn, Msg: "blob failed",
			Attrs: fmt.Sprintf("repo=%s digest=%s client=%s status=%d error=%s", e.Repo, e.Digest, e.Client, e.Status, quote(e.Err))})
		return
	}
	// Blobs from the store are the daemon's own (configs, the injected
	// layer) or upstream blobs it cached: the manifests name the configs,
	// the layer generations the injected ones.
	if (e.Source == "store" || e.Source == "offload") && e.Method == "GET" && s.layerDigests[e.Digest] && !slices.Contains(p.Injected, e.Digest) {
		p.Injected = append(p.Injected, e.Digest)
	}
	// A blob asked for again (a client's retry) went that way once.
	if redirected(e) && !slices.Contains(p.Redirected, e.Digest) {
		p.Redirected = append(p.Redirected, e.Digest)
	}
}

// redirected reports whether e's client was sent elsewhere for the blob:
// to the upstream's storage or to the offload store.
func redirected(e event.BlobServed) bool {
	return e.Method == "GET" && e.Status == http.StatusTemporaryRedirect && (e.Source == "redirect" || e.Source == "offload")
}

func (p *Pull) addRequest(r Request) {
	p.Requests = append(p.Requests, r)
	if len(p.Requests) > MaxRequests {
		p.Requests = slices.Delete(p.Requests, 0, len(p.Requests)-MaxRequests)
	}
}

func (s *State) packed(e event.LayerPacked) {
	if e.Err != "" {
		s.AddLog(LogLine{Time: e.Time, Level: slog.LevelError, Msg: "layer pack failed", Attrs: "source=" + e.Source + " error=" + quote(e.Err)})
		return
	}
	g := Generation{Number: e.Generation, Time: e.Time, TarDigest: e.TarDigest, GzipDigest: e.GzipDigest,
		Size: e.GzipSize, Files: e.Files, Platforms: map[string]string{}, PackTime: e.Duration}
	for _, p := range e.Platforms {
		g.Platforms[p] = ""
	}
	s.addGeneration(g)
}

func (s *State) reloaded(e event.LayerReloaded) {
	s.LastReload = &e
	if e.Err != "" {
		s.AddLog(LogLine{Time: e.Time, Level: slog.LevelError, Msg: "layer reload failed; the previous generation keeps serving",
			Attrs: "trigger=" + quote(e.Trigger) + " error=" + quote(e.Err)})
		return
	}
	// A re-pack that gave the same layers still tells what the serving
	// generation is made of.
	g := Generation{Number: e.Generation, GzipDigest: e.NewDigest, SetSize: e.Bytes, Files: e.Files,
		Platforms: maps.Clone(e.Platforms)}
	if e.Changed {
		g.Time, g.Trigger, g.PackTime = e.Time, e.Trigger, e.Duration
	}
	s.addGeneration(g)
}

// addGeneration records what an event or the status says of a
// generation, merged with what was known of it: each source tells part.
func (s *State) addGeneration(g Generation) {
	i := slices.IndexFunc(s.Generations, func(x Generation) bool { return x.Number == g.Number })
	if i >= 0 {
		g = merge(s.Generations[i], g)
		s.Generations[i] = g
	} else {
		s.Generations = append(s.Generations, g)
		slices.SortFunc(s.Generations, func(a, b Generation) int { return a.Number - b.Number })
	}
	if g.GzipDigest != "" {
		s.layerDigests[g.GzipDigest] = true
	}
	for _, d := range g.Platforms {
		if d != "" {
			s.layerDigests[d] = true
		}
	}
	if len(s.Generations) > MaxGenerations {
		s.Generations = slices.Delete(s.Generations, 0, len(s.Generations)-MaxGenerations)
	}
	if g.Number >= s.Current.Number {
		s.Current = g
	}
}

// merge is old with what new knows: a field new leaves empty keeps its
// old value.
func merge(old, new Generation) Generation {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	old.TarDigest, old.GzipDigest, old.Trigger = pick(old.TarDigest, new.TarDigest), pick(old.GzipDigest, new.GzipDigest), pick(old.Trigger, new.Trigger)
	if !new.Time.IsZero() {
		old.Time = new.Time
	}
	if new.Size != 0 {
		old.Size = new.Size
	}
	if new.SetSize != 0 {
		old.SetSize = new.SetSize
	}
	if new.Files != 0 {
		old.Files = new.Files
	}
	if new.PackTime != 0 {
		old.PackTime = new.PackTime
	}
	if old.Platforms == nil {
		old.Platforms = map[string]string{}
	}
	for k, d := range new.Platforms {
		old.Platforms[k] = pick(old.Platforms[k], d)
	}
	return old
}

// PlatformNames returns the generation's overlays, sorted.
func (g Generation) PlatformNames() []string { return slices.Sorted(maps.Keys(g.Platforms)) }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// quote keeps a value with spaces readable as one value.
func quote(s string) string {
	if strings.ContainsAny(s, " \t\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
