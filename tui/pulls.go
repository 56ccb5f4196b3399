package tui

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/tower-reg/tower-reg/tui/state"
)

// pullCols are the pulls table's column widths; client and platform
// columns only show on wide screens, the image takes what is left.
type pullCols struct{ time, client, image, platform, digest, blobs, status, took int }

func newPullCols(w int) pullCols {
	c := pullCols{time: 8, digest: 17, blobs: 14, status: 12, took: 6}
	fixed := c.time + c.digest + c.blobs + c.status + c.took + 5
	if w >= 100 {
		c.client = 15
		fixed += c.client + 1
	}
	if w >= 120 {
		c.platform = 12
		fixed += c.platform + 1
	}
	c.image = max(10, w-fixed)
	return c
}

func (c pullCols) row(time, client, image, platform, digest, blobs, status, took string) string {
	parts := []string{fit(time, c.time)}
	if c.client > 0 {
		parts = append(parts, fit(client, c.client))
	}
	parts = append(parts, fitLeft(image, c.image))
	if c.platform > 0 {
		parts = append(parts, fit(platform, c.platform))
	}
	parts = append(parts, fit(digest, c.digest), fit(blobs, c.blobs), status, right(took, c.took))
	return strings.Join(parts, " ")
}

func (m *Model) pullLines(w, h int) []string {
	s := m.styles
	c := newPullCols(w)
	lines := []string{s.dim.Render(c.row("TIME", "CLIENT", "IMAGE", "PLATFORM", "UPSTREAM→OURS", "BLOBS", fit("STATUS", c.status), "TOOK"))}
	ps := m.st.FilterPulls(m.query[panePulls])
	if len(ps) == 0 {
		msg := "No pulls yet. Try: docker pull " + orDash(m.st.Status.Listen) + "/library/busybox"
		if m.query[panePulls] != "" {
			msg = "No pull matches the filter."
		}
		return append(lines, "", s.dim.Render(msg))
	}
	cur := min(m.cursor[panePulls], len(ps)-1)
	start := window(cur, len(ps), h-1)
	for i := start; i < len(ps) && len(lines) < h; i++ {
		p := ps[i]
		line := c.row(p.Start.In(m.loc).Format("15:04:05"), p.Client, m.pullImage(p), platforms(p.Platforms),
			pullDigests(p), pullBlobs(p), m.pullStatus(p, c.status), fmtDur(p.Duration()))
		if i == cur {
			line = s.selected.Render(fit(line, w))
		}
		lines = append(lines, line)
	}
	return lines
}

// pullImage is the image as the table shows it, a token's pull tagged.
func (m *Model) pullImage(p *state.Pull) string {
	img := m.displayRepo(p.Repo) + ":" + p.Reference
	if strings.HasPrefix(p.Reference, "sha256:") {
		img = m.displayRepo(p.Repo) + "@" + short(p.Reference)
	}
	if p.Token != "" {
		img = "[" + p.Token + "] " + img
	}
	return img
}

func platforms(ps []string) string {
	switch len(ps) {
	case 0:
		return "–"
	case 1:
		return ps[0]
	}
	return fmt.Sprintf("%d platforms", len(ps))
}

// pullDigests is "upstream→rewritten", or a failed pull's reason.
func pullDigests(p *state.Pull) string {
	if p.Digest == "" {
		if p.Err != "" {
			return reason(p.Err)
		}
		return "–"
	}
	return short(p.Upstream) + "→" + short(p.Digest)
}

func pullBlobs(p *state.Pull) string {
	if p.BlobsStarted == 0 {
		return "–"
	}
	return fmt.Sprintf("%d/%d %s", p.BlobsDone, p.BlobsStarted, fmtBytes(p.BytesDone))
}

// pullStatus is the status cell: a progress bar while blobs stream.
func (m *Model) pullStatus(p *state.Pull, w int) string {
	s := m.styles
	switch st := p.State(); st {
	case state.StatePulling:
		pct := fmt.Sprintf("%3.0f%%", p.Progress()*100)
		n := w - len(pct) - 1
		full := int(p.Progress() * float64(n))
		return s.barFull.Render(strings.Repeat("█", full)) + s.barEmpty.Render(strings.Repeat("░", n-full)) + " " + s.busy.Render(pct)
	case state.StateError:
		return s.bad.Render(fit(fmt.Sprintf("error %d", p.ErrStatus), w))
	}
	// A pull done with redirects says so: their blobs never crossed the
	// daemon, which is why its byte count is small.
	if n := len(p.Redirected); n > 0 {
		return s.ok.Render(fit(fmt.Sprintf("%d redirected", n), w))
	}
	return s.ok.Render(fit(p.State(), w))
}

// pullRef is how a client names the pull's image on this daemon.
func (m *Model) pullRef(p *state.Pull) string {
	listen := m.st.Status.Listen
	if listen == "" {
		listen = "127.0.0.1:9090"
	}
	name := p.Repo
	host, path, ok := strings.Cut(p.Repo, "/")
	def := m.st.Status.DefaultRegistry
	isHub := func(h string) bool { return h == "index.docker.io" || h == "registry-1.docker.io" || h == "docker.io" }
	switch {
	case !ok:
	case host == def || (isHub(host) && (def == "" || isHub(def))):
		name = path
	case isHub(host):
		name = "docker.io/" + path
	default:
		// Docker's grammar has no ':' in a path: the proxy reads '_'.
		name = strings.ReplaceAll(host, ":", "_") + "/" + path
	}
	if strings.HasPrefix(p.Reference, "sha256:") {
		return listen + "/" + name + "@" + p.Reference
	}
	return listen + "/" + name + ":" + p.Reference
}

// displayRepo names a repository as a user pulls it: without the default
// registry's host.
func (m *Model) displayRepo(repo string) string {
	if def := m.st.Status.DefaultRegistry; def != "" {
		if r, ok := strings.CutPrefix(repo, def+"/"); ok {
			return r
		}
	}
	return displayRepo(repo)
}

// errCode finds an OCI error code (MANIFEST_UNKNOWN, NAME_UNKNOWN...).
var errCode = regexp.MustCompile(`\b[A-Z]+_[A-Z_]+\b`)

// reason is the short form of an error for a table cell: its OCI code,
// else its last clause (the first ones name the registry and the URL).
func reason(err string) string {
	if c := errCode.FindString(err); c != "" {
		return c
	}
	if i := strings.LastIndex(err, ": "); i >= 0 && i+2 < len(err) {
		return err[i+2:]
	}
	return err
}
