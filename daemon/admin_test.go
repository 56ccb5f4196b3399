package daemon_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// TestStatusAndEvents pulls an image while a client follows the event
// stream, then reads the status.
func TestStatusAndEvents(t *testing.T) {
	e := newEnv(t, registry.New(registry.Logger(quiet)))
	base := randomImage(t, types.OCIManifestSchema1, v1.Config{})
	e.push(t, "test/img", "latest", base)

	resp, err := http.Get(e.proxy.URL + "/_towerreg/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	kinds := make(chan string, 100)
	go func() {
		defer close(kinds)
		sc := bufio.NewScanner(resp.Body)
		var kind string
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "event: "); ok {
				kind = k
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				ev, err := event.Decode(kind, []byte(data))
				if err != nil {
					kinds <- "undecodable " + kind + ": " + err.Error()
					continue
				}
				switch ev := ev.(type) {
				case event.ManifestServed:
					kinds <- kind + " " + ev.Reference
				default:
					kinds <- kind
				}
			}
		}
	}()

	img, err := remote.Image(mustRef(t, e.through("test/img")+":latest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"ManifestServed latest": false, "BlobServed": false}
	timeout := time.After(10 * time.Second)
	for missing := len(want); missing > 0; {
		select {
		case k, ok := <-kinds:
			if !ok {
				t.Fatal("the event stream ended")
			}
			if strings.HasPrefix(k, "undecodable") {
				t.Fatal(k)
			}
			if seen, ok := want[k]; ok && !seen {
				want[k] = true
				missing--
			}
		case <-timeout:
			t.Fatalf("events seen: %v", want)
		}
	}

	sresp, err := http.Get(e.proxy.URL + "/_towerreg/status")
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(sresp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	gen := e.d.Generation()
	if st.Layer.GzipDigest != gen.Set.Common.GzipDigest.String() || st.Layer.Generation != gen.Number {
		t.Errorf("status layer %+v, want generation %d %s", st.Layer, gen.Number, gen.Set.Common.GzipDigest)
	}
	if st.Counts.Pulls != 1 || st.Counts.Blobs == 0 || st.Counts.Bytes == 0 {
		t.Errorf("counts %+v after one pull", st.Counts)
	}
	if st.Version == "" || st.Started.IsZero() {
		t.Errorf("status %+v", st)
	}
}
