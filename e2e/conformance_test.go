package e2e

// The OCI distribution-spec conformance suite (`make tools` builds it into
// bin/conformance), run against the daemon in its read-only mode: the suite
// pushes nothing and asks, in one repository, for the tags, manifests,
// blobs and referrers subjects it is given. Those are the daemon's own: the
// rewritten image and index, their blobs, and the referrers of the
// upstream digests they were made from.

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// conformanceOff are the suite's settings that a read-only proxy turns
// off: it answers every write with 405 UNSUPPORTED (TestProxyReadOnly),
// which the spec allows and the suite would count as a failure or a skip.
var conformanceOff = []string{
	"OCI_API_PUSH=false",
	"OCI_API_BLOBS_DELETE=false",
	"OCI_API_MANIFESTS_DELETE=false",
	"OCI_API_TAGS_DELETE=false",
	"OCI_API_BLOBS_ATOMIC=false",
	"OCI_API_MANIFESTS_ATOMIC=false",
	"OCI_API_TAGS_ATOMIC=false",
	"OCI_API_BLOBS_MOUNT_ANONYMOUS=false",
}

// conformanceMustPass are the suite's APIs (by its names for them) that the
// read-only run exercises: each must end as Pass. Every other API must be
// Disabled by conformanceOff, or never run.
var conformanceMustPass = []string{
	"Ping", "Tag listing", "Referrers",
	"Manifest get by digest", "Manifest get by tag",
	"Manifest head by digest", "Manifest head by tag",
	"Blob get", "Blob head",
}

// TestOCIConformance runs the official conformance suite against the
// daemon, read-only, over the referrers fixture: the rewritten image's and
// index's tags; the rewritten image, index and amd64 child by digest; a
// base layer, the injected layer and the rewritten config as blobs; the
// rewritten image, index and child as referrers subjects. Every check the
// suite reports failed fails this test, with the suite's report.
func TestOCIConformance(t *testing.T) {
	bin := need(t, "conformance")
	f := startRefFixture(t)
	base, injected, config := rewrittenBlobs(t, f)
	tags := []string{refImageTag, refIndexTag}
	manifests := []v1.Hash{f.img, f.idx, f.child}
	blobs := []v1.Hash{base, injected, config}

	env := []string{
		"OCI_VERSION=1.1",
		"OCI_REGISTRY=" + f.d.Addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=" + f.path,
		"OCI_RESULTS_DIR=" + t.TempDir(),
		"OCI_RO_DATA_TAGS=" + strings.Join(tags, " "),
		"OCI_RO_DATA_MANIFESTS=" + join(manifests...),
		"OCI_RO_DATA_BLOBS=" + join(blobs...),
		// The suite checks the answer's form only: which referrers each
		// has is TestProxyReferrersConformance's.
		"OCI_RO_DATA_REFERRERS=" + join(manifests...),
		// The daemon sends Docker-Content-Digest with every blob; the
		// suite then checks it against the digest asked for.
		"OCI_API_BLOBS_DIGEST_HEADER=true",
	}
	stdout, stderr, err := runCmd(t, append(withoutOCIEnv(), append(env, conformanceOff...)...), bin)
	// Not the exit status: 0 when the suite could not load its config, 2
	// when it crashes writing results.yaml, which this version does in
	// read-only mode (see e2e/README.md), after it printed its report.
	rep, perr := parseConformance(stdout)
	if perr != nil {
		t.Fatalf("the suite printed no complete report (%v): %v\nstdout:\n%s\nstderr:\n%s", err, perr, stdout, stderr)
	}
	if i := strings.Index(stderr, "panic:"); i >= 0 {
		if !strings.Contains(stderr[i:], "ReportResultsYAML") {
			t.Errorf("the suite crashed, not where this version is known to:\n%s", stderr[i:])
		}
		t.Logf("the suite crashed writing results.yaml, after its report, as this version does in read-only mode: %s", firstLine(stderr[i:]))
	}

	for _, c := range rep.bad {
		t.Errorf("%s", c)
	}
	if rep.result != "Pass" {
		t.Errorf("OCI Conformance Result: %s", rep.result)
	}
	for api, status := range rep.apis {
		switch {
		case slices.Contains(conformanceMustPass, api):
			if status != "Pass" {
				t.Errorf("API %q: %s, want Pass", api, status)
			}
		case status != "Disabled" && status != "Unknown":
			// Unknown: never run, as the range requests, which the suite
			// makes only on blobs it pushed.
			t.Errorf("API %q: %s, want Disabled (or not run): conformanceOff turns it off", api, status)
		}
	}
	for _, api := range conformanceMustPass {
		if _, ok := rep.apis[api]; !ok {
			t.Errorf("API %q: not in the report", api)
		}
	}
	t.Logf("conformance suite: %d passed, %d failed, %d errors, %d skipped, %d disabled (push and delete)",
		rep.counts["Pass"], rep.counts["FAIL"], rep.counts["Error"], rep.counts["Skip"], rep.counts["Disabled"])
	// Each input was asked for: a HEAD and a GET of each tag, manifest
	// and blob, one tag list and one referrers check (of every subject).
	ro := 0
	for _, name := range rep.passed {
		if strings.HasPrefix(name, "OCI Conformance Test/read-only/") {
			ro++
		}
	}
	if want := 2*(len(tags)+len(manifests)+len(blobs)) + 2; ro != want {
		t.Errorf("%d read-only checks passed, want %d", ro, want)
	}
	if t.Failed() {
		t.Logf("the suite's report:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

// rewrittenBlobs are blobs of the daemon's rewritten image: its first
// layer (the upstream's, streamed), its last (the injected layer, from
// the daemon's store) and its config (made by the daemon).
func rewrittenBlobs(t *testing.T, f *refFixture) (base, injected, config v1.Hash) {
	t.Helper()
	resp, body := do(t, http.MethodGet, f.d.url("/v2/"+f.path+"/manifests/"+f.img.String()))
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("the rewritten image: %s %v", resp.Status, err)
	}
	if len(m.Layers) < 2 {
		t.Fatalf("the rewritten image has %d layers, want the upstream's and ours", len(m.Layers))
	}
	return m.Layers[0].Digest, m.Layers[len(m.Layers)-1].Digest, m.Config.Digest
}

func join(hs ...v1.Hash) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = h.String()
	}
	return strings.Join(s, " ")
}

// withoutOCIEnv is the environment less any OCI_ variable of whoever runs
// the tests: each one would change what the suite checks.
func withoutOCIEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OCI_") })
}

// conformanceReport is what the suite prints on stdout: the tree of its
// checks, the totals by status, and a status per API.
type conformanceReport struct {
	result string            // the "OCI Conformance Result"
	counts map[string]int    // checks by status: Pass, FAIL, Error, Skip, Disabled
	apis   map[string]string // the API's name, its status
	// bad are the checks that failed, erred, or were skipped for a reason
	// other than our configuration (Skip: the suite's "registry does not
	// support"), each with the suite's errors.
	bad []string
	// passed are the names of the checks that passed.
	passed []string
}

var (
	conformanceNode  = regexp.MustCompile(`^( *)(OCI Conformance Test.*): (Pass|FAIL|Skip|Disabled|Error|Unknown)$`)
	conformanceCount = regexp.MustCompile(`^ +(\S.*?)\.*: +(\S+)$`)
)

// parseConformance reads the suite's report. Its sections, in order: "Test
// results" (the tree, each check indented under its parent, a leaf's
// errors on the lines after it), "Configuration:", "OCI Conformance
// Result: X" with the totals, "API conformance:", "Data conformance:".
func parseConformance(stdout string) (conformanceReport, error) {
	rep := conformanceReport{counts: map[string]int{}, apis: map[string]string{}}
	lines := strings.Split(stdout, "\n")
	section := ""
	type node struct {
		indent       int
		name, status string
		errs         []string
	}
	var tree []node
	for _, l := range lines {
		switch {
		case l == "Test results", l == "Configuration:", l == "API conformance:", l == "Data conformance:":
			section = l
			continue
		case strings.HasPrefix(l, "OCI Conformance Result: "):
			section, rep.result = "totals", strings.TrimPrefix(l, "OCI Conformance Result: ")
			continue
		}
		switch section {
		case "Test results":
			if m := conformanceNode.FindStringSubmatch(l); m != nil {
				tree = append(tree, node{indent: len(m[1]), name: m[2], status: m[3]})
			} else if len(tree) > 0 && strings.TrimSpace(l) != "" {
				tree[len(tree)-1].errs = append(tree[len(tree)-1].errs, strings.TrimPrefix(strings.TrimSpace(l), "- "))
			}
		case "totals", "API conformance:":
			m := conformanceCount.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			if section == "totals" {
				n, err := strconv.Atoi(m[2])
				if err != nil {
					return rep, fmt.Errorf("total %q: %w", l, err)
				}
				rep.counts[m[1]] = n
			} else {
				rep.apis[m[1]] = m[2]
			}
		}
	}
	if section != "Data conformance:" || len(tree) == 0 || rep.result == "" || len(rep.apis) == 0 {
		return rep, fmt.Errorf("the report stops in section %q with %d checks", section, len(tree))
	}
	for i, n := range tree {
		leaf := i+1 == len(tree) || tree[i+1].indent <= n.indent
		switch {
		case !leaf, n.status == "Disabled":
		case n.status == "Pass":
			rep.passed = append(rep.passed, n.name)
		default:
			rep.bad = append(rep.bad, n.name+": "+n.status+": "+strings.Join(n.errs, "\n  "))
		}
	}
	return rep, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestConformanceReport reads reports shaped as the suite prints them: a
// failed check with its errors on the lines after it, one skipped for a
// missing feature, one disabled, and a report cut short.
func TestConformanceReport(t *testing.T) {
	const head = "Test results\n" +
		"OCI Conformance Test: FAIL\n" +
		"  OCI Conformance Test/ping: Pass\n" +
		"  OCI Conformance Test/sha256 blobs: Disabled\n" +
		"  OCI Conformance Test/read-only: FAIL\n" +
		"    OCI Conformance Test/read-only/tag-list: FAIL\n" +
		"     - tag \"a\" returned when last set to \"b\"\n" +
		"tag \"c\" returned when last set to \"b\"\n" +
		"    OCI Conformance Test/read-only/referrers: Skip\n" +
		"     - registry does not set the expected OCI-Filters-Applied header\n" +
		"\nConfiguration:\n  registry: 127.0.0.1:1\n\n" +
		"OCI Conformance Result: FAIL\n" +
		"  Disabled......................:          1\n" +
		"  Pass..........................:          1\n" +
		"  FAIL..........................:          1\n\n" +
		"API conformance:\n" +
		"  Tag listing...................:       FAIL\n" +
		"  Manifest put with tag params..:   Disabled\n\n"
	rep, err := parseConformance(head + "Data conformance:\n  Read Only Inputs..............:       FAIL\n")
	if err != nil {
		t.Fatal(err)
	}
	wantBad := []string{
		"OCI Conformance Test/read-only/tag-list: FAIL: tag \"a\" returned when last set to \"b\"\n  tag \"c\" returned when last set to \"b\"",
		"OCI Conformance Test/read-only/referrers: Skip: registry does not set the expected OCI-Filters-Applied header",
	}
	if !slices.Equal(rep.bad, wantBad) {
		t.Errorf("bad %q, want %q", rep.bad, wantBad)
	}
	if want := []string{"OCI Conformance Test/ping"}; !slices.Equal(rep.passed, want) {
		t.Errorf("passed %q, want %q", rep.passed, want)
	}
	if rep.result != "FAIL" || rep.counts["Pass"] != 1 || rep.counts["FAIL"] != 1 || rep.counts["Disabled"] != 1 {
		t.Errorf("result %q counts %v", rep.result, rep.counts)
	}
	if want := map[string]string{"Tag listing": "FAIL", "Manifest put with tag params": "Disabled"}; !maps.Equal(rep.apis, want) {
		t.Errorf("apis %v, want %v", rep.apis, want)
	}
	if _, err := parseConformance(head); err == nil {
		t.Error("a report without its data section was taken as complete")
	}
}
