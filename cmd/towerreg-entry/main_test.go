package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tower-reg/tower-reg/internal/prereq"
	"github.com/tower-reg/tower-reg/internal/s3test"
	"github.com/tower-reg/tower-reg/layer/entry"
)

// helperEnv makes the test binary act as the chained program: it reports
// what it was started with and exits with the status in exitEnv.
const (
	helperEnv = "TOWERREG_ENTRY_TEST_HELPER"
	exitEnv   = "TOWERREG_ENTRY_TEST_EXIT"
)

// report is what the helper saw of its own process.
type report struct {
	Args []string
	Env  []string
	PID  int
}

// buildDir holds the binaries built for the tests, for the whole run.
var buildDir string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helper()
	}
	dir, err := os.MkdirTemp("", "towerreg-entry-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func helper() {
	code, _ := strconv.Atoi(os.Getenv(exitEnv))
	err := json.NewEncoder(os.Stdout).Encode(report{Args: os.Args, Env: os.Environ(), PID: os.Getpid()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(99)
	}
	os.Exit(code)
}

// build compiles the entry as the Makefile does, into out.
func build(out, goos, goarch string) error {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	cmd := exec.Command(gocmd, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, output)
	}
	return nil
}

// hostBinary builds the entry for this host once, for all the tests that run it.
var hostBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(buildDir, "entry")
	return out, build(out, runtime.GOOS, runtime.GOARCH)
})

// run starts the entry binary with env and args, and returns what the
// chained helper reported (zero if it did not run), the entry's stderr, its
// exit status and its PID.
func run(t *testing.T, env []string, args ...string) (rep report, stderr string, code, pid int) {
	t.Helper()
	bin, err := hostBinary()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, errbuf bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &stdout, &errbuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	if err := cmd.Wait(); err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatal(err)
	}
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("helper output %q: %v", stdout.Bytes(), err)
		}
	}
	return rep, errbuf.String(), cmd.ProcessState.ExitCode(), pid
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func entrypointVar(t *testing.T, entrypoint ...string) string {
	t.Helper()
	b, err := json.Marshal(entrypoint)
	if err != nil {
		t.Fatal(err)
	}
	return entry.EntrypointEnv + "=" + string(b)
}

func without(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, key+"=")
	})
}

func TestChain(t *testing.T) {
	exe := self(t)
	ep := []string{exe, "entry arg", `with "quotes"`, "new\nline", ""}
	args := []string{"two words", "'single'", "", "$HOME", "*", "-test.run=none", "--", "é"}
	env := []string{
		"PATH=/nonexistent",
		helperEnv + "=1",
		"HOME=/home/somebody",
		entrypointVar(t, ep...),
		"EQ=a=b",
		"EMPTY=",
		entry.EntrypointEnv + "_OTHER=kept",
	}

	rep, stderr, code, pid := run(t, env, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if want := append(slices.Clone(ep), args...); !slices.Equal(rep.Args, want) {
		t.Errorf("chained program got args %q, want %q", rep.Args, want)
	}
	if want := without(env, entry.EntrypointEnv); !slices.Equal(rep.Env, want) {
		t.Errorf("chained program got env %q, want %q", rep.Env, want)
	}
	// Same PID: the entry was replaced, not a parent, so the program is
	// PID 1 in a container and gets signals directly.
	if rep.PID != pid {
		t.Errorf("chained program has PID %d, the entry had %d", rep.PID, pid)
	}
}

func TestChainPathLookup(t *testing.T) {
	exe := self(t)
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "helper")); err != nil {
		t.Fatal(err)
	}
	path := "PATH=/nonexistent:" + bin
	for _, tt := range []struct {
		name     string
		env      []string
		args     []string
		wantArgs []string
	}{
		{"entrypoint", []string{path, entrypointVar(t, "helper", "-x")}, []string{"y"}, []string{"helper", "-x", "y"}},
		{"cmd only", []string{path, entry.EntrypointEnv + "=[]"}, []string{"helper", "y"}, []string{"helper", "y"}},
		{"null entrypoint", []string{path, entry.EntrypointEnv + "=null"}, []string{"helper"}, []string{"helper"}},
		{"empty entrypoint", []string{path, entry.EntrypointEnv + "="}, []string{"helper"}, []string{"helper"}},
		{"absolute", []string{"PATH=/nonexistent", entrypointVar(t, exe)}, nil, []string{exe}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := append(slices.Clone(tt.env), helperEnv+"=1")
			rep, stderr, code, _ := run(t, env, tt.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !slices.Equal(rep.Args, tt.wantArgs) {
				t.Errorf("chained program got args %q, want %q", rep.Args, tt.wantArgs)
			}
			if want := without(env, entry.EntrypointEnv); !slices.Equal(rep.Env, want) {
				t.Errorf("chained program got env %q, want %q", rep.Env, want)
			}
		})
	}
}

func TestChainExitStatus(t *testing.T) {
	exe := self(t)
	for _, want := range []int{0, 1, 42, 126, 127, 255} {
		t.Run(strconv.Itoa(want), func(t *testing.T) {
			t.Parallel()
			env := []string{helperEnv + "=1", exitEnv + "=" + strconv.Itoa(want), entrypointVar(t, exe)}
			rep, _, code, _ := run(t, env)
			if rep.Args == nil {
				t.Fatal("the helper did not run")
			}
			if code != want {
				t.Errorf("exit status %d, want %d", code, want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data := write("data", "data\n", 0o644)
	garbage := write("garbage", "neither ELF nor #!\n", 0o755)
	script := write("script", "#!/nonexistent/interpreter\n", 0o755)
	path := "PATH=" + dir

	for _, tt := range []struct {
		name       string
		env        []string
		args       []string
		wantCode   int
		wantStderr string // without the trailing newline
	}{
		{"no command", []string{path, entry.EntrypointEnv + "=[]"}, nil, 127,
			"towerreg-entry: no command specified"},
		{"no command, unset", []string{path}, nil, 127,
			"towerreg-entry: no command specified"},
		{"not found", []string{path, entrypointVar(t, "foo")}, []string{"x"}, 127,
			`towerreg-entry: exec "foo": executable file not found in $PATH`},
		{"not executable in PATH", []string{path}, []string{"data"}, 127,
			`towerreg-entry: exec "data": executable file not found in $PATH`},
		{"missing file", []string{path, entrypointVar(t, "/nonexistent/foo")}, nil, 127,
			`towerreg-entry: exec "/nonexistent/foo": stat /nonexistent/foo: no such file or directory`},
		{"permission denied", []string{path}, []string{data}, 126,
			`towerreg-entry: exec "` + data + `": permission denied`},
		{"exec format error", []string{path}, []string{garbage}, 126,
			`towerreg-entry: exec "` + garbage + `": exec format error`},
		{"missing interpreter", []string{path}, []string{script}, 127,
			`towerreg-entry: exec "` + script + `": no such file or directory`},
		{"malformed", []string{path, entry.EntrypointEnv + `=["foo",`}, []string{"foo"}, 127,
			`towerreg-entry: TOWERREG_ENTRYPOINT="[\"foo\"," is not a JSON array of strings: unexpected end of JSON input`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, stderr, code, _ := run(t, tt.env, tt.args...)
			if rep.Args != nil {
				t.Fatalf("the helper ran: %q", rep.Args)
			}
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			if want := tt.wantStderr + "\n"; stderr != want {
				t.Errorf("stderr %q, want %q", stderr, want)
			}
		})
	}
}

// TestStatic builds the entry for every platform the default layer carries
// and checks it needs no dynamic loader or library in the image.
func TestStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles")
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "entry")
			if err := build(out, "linux", arch); err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != machine {
				t.Errorf("machine %v, want %v", f.Machine, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("has a %v program header: not static", p.Type)
				}
			}
			// The layer carries it gzipped; the target is 8 MB.
			bin, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var gz bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			zw.Write(bin)
			zw.Close()
			t.Logf("linux/%s: %d bytes, %d gzipped", arch, len(bin), gz.Len())
			if gz.Len() > 8_000_000 {
				t.Errorf("linux/%s: %d bytes gzipped, over the 8 MB target", arch, gz.Len())
			}
		})
	}
}

// TestDependencies keeps the daemon's dependencies out of the entry: it is
// copied into every image. Of tower-reg it links the entry's logic and the
// FUSE client only; of the rest, what those two need (go-fuse, minio-go and
// theirs), and none of the registry, dashboard or tunnel libraries.
func TestDependencies(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		prereq.Missing(t, "go not on PATH", "install Go 1.26")
	}
	cmd := exec.Command(gocmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowedOwn := []string{
		"github.com/tower-reg/tower-reg/cmd/towerreg-entry",
		"github.com/tower-reg/tower-reg/layer/entry",
		"github.com/tower-reg/tower-reg/layer/fusion",
		"github.com/tower-reg/tower-reg/layer/fusion/s3fs",
	}
	forbidden := []string{
		"github.com/google/go-containerregistry",
		"github.com/charmbracelet/",
		"golang.ngrok.com/",
		"github.com/fsnotify/",
		"github.com/adrg/xdg",
		"github.com/klauspost/pgzip",
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/tower-reg/tower-reg") && !slices.Contains(allowedOwn, dep) {
			t.Errorf("the entry links %s; it may link only %q of tower-reg", dep, allowedOwn)
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("the entry links %s, a daemon dependency", dep)
			}
		}
	}
}

// TestFusionLifecycle runs the entry on the host with NXF_FUSION_BUCKETS:
// the program it chains to reads the mount, and once that program is gone
// the FUSE server unmounts and exits by itself.
func TestFusionLifecycle(t *testing.T) {
	s3test.NeedFUSE(t)
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "life")
	srv.WriteObject(t, bucket, "greeting.txt", []byte("hi from S3\n"))
	bin, err := hostBinary()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		prereq.Missing(t, "cat not on PATH", "apt-get install coreutils")
	}
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{name: "mounts, then chains", args: []string{cat, "MNT/life/greeting.txt"}, wantOut: "hi from S3\n"},
		{name: "chain ends with the program's status", env: []string{entry.EntrypointEnv + `=["/bin/sh","-c"]`},
			args: []string{"exit 7"}, wantCode: 7},
		{name: "unknown bucket", env: []string{"NXF_FUSION_BUCKETS=nope-bucket"}, args: []string{cat, "/dev/null"},
			wantErr: `towerreg-entry: fusion: bucket "nope-bucket" at ` + srv.URL + " does not exist; fix NXF_FUSION_BUCKETS (or AWS_ENDPOINT_URL)\n", wantCode: 1},
		{name: "bad variable", env: []string{"NXF_FUSION_ATTR_TTL=soon"}, args: []string{cat, "/dev/null"},
			wantErr: "towerreg-entry: fusion: NXF_FUSION_ATTR_TTL=\"soon\" is not a duration such as 5s or 500ms\n", wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mnt := filepath.Join(t.TempDir(), "s3")
			args := slices.Clone(tt.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "MNT", mnt)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = append(append(os.Environ(), srv.Env(bucket)...), "NXF_FUSION_MOUNT="+mnt)
			cmd.Env = append(cmd.Env, tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.WaitDelay = 10 * time.Second
			err := cmd.Run()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || stdout.String() != tt.wantOut || stderr.String() != tt.wantErr {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
			// The server notices within a second that its parent is gone.
			deadline := time.Now().Add(5 * time.Second)
			for mounted(t, mnt) {
				if time.Now().After(deadline) {
					syscall.Unmount(mnt, syscall.MNT_DETACH)
					t.Fatalf("%s still mounted 5s after the program ended", mnt)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// mounted reports whether dir is a mount point.
func mounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
