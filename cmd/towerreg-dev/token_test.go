package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type layerFile struct {
	path string
	json string // the request's view of it
}

// writeLayerFile writes what pack prints for a layer of the given bytes,
// with an extra field, as pack may add some.
func writeLayerFile(t *testing.T, name, content string) layerFile {
	t.Helper()
	gz, n, err := v1.SHA256(strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	tar, _, err := v1.SHA256(strings.NewReader("tar of " + content))
	if err != nil {
		t.Fatal(err)
	}
	loc := "file://" + filepath.Join(t.TempDir(), name+".tar.gz")
	p := filepath.Join(t.TempDir(), name+".json")
	b := fmt.Sprintf(`{"location":%q,"gzipDigest":%q,"gzipSize":%d,"tarDigest":%q,"hasEntry":false}`, loc, gz, n, tar)
	if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return layerFile{p, fmt.Sprintf(`{"location":%q,"gzipDigest":%q,"gzipSize":%d,"tarDigest":%q}`, loc, gz, n, tar)}
}

const answer = `{"containerToken":"abcdefghijklmnopqrstuvwxyz234567","targetImage":"127.0.0.1:9090/wt/abcdefghijklmnopqrstuvwxyz234567/nextflow/bash:latest","expiration":"2026-05-02T09:00:00Z"}`

// daemon is a stand-in for the local API that records the one request it
// gets and answers as told.
func fakeDaemon(t *testing.T, status int, body string) (addr string, got func() (string, int32)) {
	t.Helper()
	var calls atomic.Int32
	var req atomic.Value
	req.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/container-token" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s %s (%s), want POST /container-token (application/json)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		req.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() (string, int32) { return req.Load().(string), calls.Load() }
}

func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("request body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("test JSON %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("request body\n%s\nwant\n%s", got, want)
	}
}

func TestTokenCommand(t *testing.T) {
	a := writeLayerFile(t, "a", "layer a")
	b := writeLayerFile(t, "b", "layer b")
	var indented bytes.Buffer
	json.Indent(&indented, []byte(answer), "", "  ")
	indented.WriteByte('\n')

	tests := []struct {
		name     string
		args     []string
		status   int
		answer   string
		wantBody string // "" when nothing may be sent
		wantOut  string
		wantErr  string
	}{
		{
			name:     "everything",
			args:     []string{"--layer", a.path, "--layer", b.path, "--entrypoint", `["/bin/sh","-c"]`, "--cmd", "echo hi", "--env", "A=1", "--env", "B=x=y", "--workdir", "/work", "quay.io/nextflow/bash:latest"},
			status:   200,
			answer:   answer,
			wantBody: `{"containerImage":"quay.io/nextflow/bash:latest","containerConfig":{"layers":[` + a.json + `,` + b.json + `],"entrypoint":["/bin/sh","-c"],"cmd":["echo hi"],"env":["A=1","B=x=y"],"workingDir":"/work"}}`,
			wantOut:  indented.String(),
		},
		{
			name:     "flags after the image",
			args:     []string{"busybox", "--entrypoint", "/bin/env", "--cmd", `["-u","X"]`},
			status:   200,
			answer:   answer,
			wantBody: `{"containerImage":"busybox","containerConfig":{"entrypoint":["/bin/env"],"cmd":["-u","X"]}}`,
			wantOut:  indented.String(),
		},
		{
			name:     "image only",
			args:     []string{"busybox"},
			status:   200,
			answer:   answer,
			wantBody: `{"containerImage":"busybox"}`,
			wantOut:  indented.String(),
		},
		{
			name:     "OCI error",
			args:     []string{"--layer", a.path, "busybox"},
			status:   400,
			answer:   `{"errors":[{"code":"DIGEST_INVALID","message":"containerConfig.layers[0]: gzipDigest mismatch:\n expected sha256:aa, got sha256:bb"}]}`,
			wantBody: `{"containerImage":"busybox","containerConfig":{"layers":[` + a.json + `]}}`,
			wantErr:  "token: the daemon refused the request: DIGEST_INVALID: containerConfig.layers[0]: gzipDigest mismatch: expected sha256:aa, got sha256:bb",
		},
		{
			name:     "plain error",
			args:     []string{"busybox"},
			status:   502,
			answer:   "upstream down\nmore detail",
			wantBody: `{"containerImage":"busybox"}`,
			wantErr:  "token: the daemon answered 502 Bad Gateway: upstream down",
		},
		{
			name:     "success without a token",
			args:     []string{"busybox"},
			status:   200,
			answer:   `{}`,
			wantBody: `{"containerImage":"busybox"}`,
			wantErr:  "with no token",
		},
		{name: "no image", args: []string{"--env", "A=1"}, wantErr: "want one IMAGE, got 0"},
		{name: "two images", args: []string{"busybox", "alpine"}, wantErr: "want one IMAGE, got 2"},
		{name: "bad env", args: []string{"--env", "NOEQUALS", "busybox"}, wantErr: "containerConfig.env[0]: must be KEY=VALUE"},
		{name: "bad entrypoint", args: []string{"--entrypoint", `["/bin/sh",1]`, "busybox"}, wantErr: "not a JSON array of strings"},
		{name: "relative workdir", args: []string{"--workdir", "w", "busybox"}, wantErr: "containerConfig.workingDir: must be an absolute path"},
		{name: "bad image", args: []string{"Not::Valid"}, wantErr: "containerImage: could not parse reference"},
		{name: "missing layer file", args: []string{"--layer", "/nonexistent/l.json", "busybox"}, wantErr: "--layer: open /nonexistent/l.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := fakeDaemon(t, tt.status, tt.answer)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"token", "--addr", addr}, tt.args...), &stdout, &stderr)
			body, calls := got()
			if tt.wantBody == "" && calls != 0 {
				t.Errorf("sent %d requests, want none", calls)
			}
			if tt.wantBody != "" {
				sameJSON(t, body, tt.wantBody)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q is not one line", err)
				}
				if stdout.Len() != 0 {
					t.Errorf("printed %q on failure", stdout.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("stdout =\n%s\nwant\n%s", stdout.String(), tt.wantOut)
			}
			if strings.Contains(stderr.String(), "docker run") {
				t.Errorf("printed a docker line when stdout is no terminal: %q", stderr.String())
			}
		})
	}
}

func TestTokenLayerFileNamed(t *testing.T) {
	good := writeLayerFile(t, "good", "g")
	bad := filepath.Join(t.TempDir(), "bad.json")
	zero := "sha256:" + strings.Repeat("0", 64)
	if err := os.WriteFile(bad, []byte(`{"location":"ftp://h/l.tgz","gzipDigest":"`+zero+`","gzipSize":1,"tarDigest":"`+zero+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"token", "--addr", "127.0.0.1:1", "--layer", good.path, "--layer", bad, "busybox"}, io.Discard, io.Discard)
	want := "--layer " + bad + `: containerConfig.layers[1].location: location refused: scheme "ftp"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want one naming %q", err, want)
	}
}

func TestTokenTerminalLine(t *testing.T) {
	addr, _ := fakeDaemon(t, 200, answer)
	var stdout, stderr bytes.Buffer
	tf := tokenFlags{addr: addr, image: "quay.io/nextflow/bash:latest"}
	if err := requestToken(context.Background(), tf, &stdout, &stderr, true); err != nil {
		t.Fatal(err)
	}
	want := "docker run --rm 127.0.0.1:9090/wt/abcdefghijklmnopqrstuvwxyz234567/nextflow/bash:latest\n"
	if stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}

func TestTokenDaemonDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, []string{"token", "--addr", addr, "busybox"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the daemon at "+addr) {
		t.Errorf("error = %v, want 'cannot reach the daemon'", err)
	}
}

func TestTokenDefaultAddr(t *testing.T) {
	tf, err := parseTokenFlags([]string{"busybox"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// No --addr: the daemon is looked for (runtime file, config, default).
	if tf.addr != "" {
		t.Errorf("default --addr = %q, want none, so that the daemon is looked for", tf.addr)
	}
}
