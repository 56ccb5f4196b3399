package entry_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tower-reg/tower-reg/layer"
	"github.com/tower-reg/tower-reg/layer/entry"
)

func TestEntrypointEnvMatchesLayer(t *testing.T) {
	if entry.EntrypointEnv != layer.EntrypointEnv {
		t.Fatalf("entry.EntrypointEnv = %q, layer.EntrypointEnv = %q: the proxy and the entry disagree",
			entry.EntrypointEnv, layer.EntrypointEnv)
	}
}

// writeFile creates dir/name with mode and returns its path.
func writeFile(t *testing.T, dir, name string, mode fs.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/nonexistent\n"), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPlan(t *testing.T) {
	bin := t.TempDir()
	prog := writeFile(t, bin, "prog", 0o755)
	writeFile(t, bin, "data", 0o644)
	if err := os.Mkdir(filepath.Join(bin, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Earlier in PATH but holding no usable "prog": the search must go on.
	shadow := t.TempDir()
	writeFile(t, shadow, "prog", 0o644)
	if err := os.Mkdir(filepath.Join(shadow, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	second := t.TempDir()
	writeFile(t, second, "subdir", 0o755)

	path := "PATH=" + bin
	ep := func(json string) string { return entry.EntrypointEnv + "=" + json }

	tests := []struct {
		name     string
		env      []string
		args     []string
		wantPath string
		wantArgs []string
		wantEnv  []string // nil means env minus EntrypointEnv
	}{
		{
			name:     "entrypoint and args",
			env:      []string{path, ep(`["` + prog + `","--flag"]`)},
			args:     []string{"a", "b"},
			wantPath: prog,
			wantArgs: []string{prog, "--flag", "a", "b"},
		},
		{
			name:     "entrypoint only",
			env:      []string{path, ep(`["` + prog + `"]`)},
			wantPath: prog,
			wantArgs: []string{prog},
		},
		{
			name:     "empty array",
			env:      []string{path, ep(`[]`)},
			args:     []string{prog, "x"},
			wantPath: prog,
			wantArgs: []string{prog, "x"},
		},
		{
			name:     "null",
			env:      []string{path, ep(`null`)},
			args:     []string{prog},
			wantPath: prog,
			wantArgs: []string{prog},
		},
		{
			name:     "empty value",
			env:      []string{path, ep(``)},
			args:     []string{prog},
			wantPath: prog,
			wantArgs: []string{prog},
		},
		{
			name:     "unset",
			env:      []string{path},
			args:     []string{prog},
			wantPath: prog,
			wantArgs: []string{prog},
		},
		{
			name:     "JSON with spaces",
			env:      []string{path, ep(" [ \"prog\" ,\n \"x\" ] ")},
			wantPath: prog,
			wantArgs: []string{"prog", "x"},
		},
		{
			name: "verbatim arguments",
			env: []string{path, ep(`["prog","-c","echo \"$HOME\" 'x'\n*","",` +
				`"a b","\\","é\u0001"]`)},
			args:     []string{"two words", `"quoted"`, "'single'", "new\nline", "", "$(id)", "*", "tab\there"},
			wantPath: prog,
			wantArgs: []string{"prog", "-c", "echo \"$HOME\" 'x'\n*", "", "a b", `\`, "é\x01",
				"two words", `"quoted"`, "'single'", "new\nline", "", "$(id)", "*", "tab\there"},
		},
		{
			name:     "argv[0] kept as written",
			env:      []string{path, ep(`["prog"]`)},
			wantPath: prog,
			wantArgs: []string{"prog"},
		},
		{
			name:     "skips non-executable and directory",
			env:      []string{"PATH=" + shadow + ":" + bin, ep(`["prog"]`)},
			wantPath: prog,
			wantArgs: []string{"prog"},
		},
		{
			name:     "skips directory",
			env:      []string{"PATH=" + shadow + ":" + second, ep(`["subdir"]`)},
			wantPath: filepath.Join(second, "subdir"),
			wantArgs: []string{"subdir"},
		},
		{
			name:     "first PATH wins",
			env:      []string{"PATH=" + bin, "PATH=/nonexistent", ep(`["prog"]`)},
			wantPath: prog,
			wantArgs: []string{"prog"},
		},
		{
			name:     "absolute path",
			env:      []string{"PATH=/nonexistent", ep(`["` + prog + `"]`)},
			wantPath: prog,
			wantArgs: []string{prog},
		},
		{
			name:     "environment kept",
			env:      []string{"B=2", path, "EMPTY=", "EQ=a=b", "A=1", "NOEQUALS"},
			args:     []string{"prog"},
			wantPath: prog,
			wantArgs: []string{"prog"},
		},
		{
			name: "variable removed",
			env: []string{"A=1", ep(`["prog"]`), path, ep(`["other"]`),
				entry.EntrypointEnv + "X=1", "X" + entry.EntrypointEnv + "=1", strings.ToLower(entry.EntrypointEnv) + "=1"},
			wantPath: prog,
			wantArgs: []string{"prog"},
			wantEnv: []string{"A=1", path,
				entry.EntrypointEnv + "X=1", "X" + entry.EntrypointEnv + "=1", strings.ToLower(entry.EntrypointEnv) + "=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := slices.Clone(tt.env)
			args := slices.Clone(tt.args)
			got, err := entry.Plan(env, args)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if got.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q", got.Path, tt.wantPath)
			}
			if !slices.Equal(got.Args, tt.wantArgs) {
				t.Errorf("Args = %q, want %q", got.Args, tt.wantArgs)
			}
			wantEnv := tt.wantEnv
			if wantEnv == nil {
				wantEnv = slices.DeleteFunc(slices.Clone(tt.env), func(kv string) bool {
					return strings.HasPrefix(kv, entry.EntrypointEnv+"=")
				})
			}
			if !slices.Equal(got.Env, wantEnv) {
				t.Errorf("Env = %q, want %q", got.Env, wantEnv)
			}
			if !slices.Equal(env, tt.env) || !slices.Equal(args, tt.args) {
				t.Errorf("Plan modified its input: env %q, args %q", env, args)
			}
		})
	}
}

// TestPlanDefaultPath needs a program in the default PATH; any Unix host has sh.
func TestPlanDefaultPath(t *testing.T) {
	want := ""
	for _, dir := range filepath.SplitList(entry.DefaultPath) {
		p := filepath.Join(dir, "sh")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			want = p
			break
		}
	}
	if want == "" {
		t.Skip("no sh in", entry.DefaultPath)
	}
	got, err := entry.Plan([]string{"HOME=/"}, []string{"sh"})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if got.Path != want {
		t.Errorf("Path = %q, want %q", got.Path, want)
	}
	if !slices.Equal(got.Env, []string{"HOME=/"}) {
		t.Errorf("Env = %q: the default PATH must not be added to the environment", got.Env)
	}
}

// The tests below change the working directory, so they cannot be parallel.

func TestPlanWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "prog", 0o755)
	t.Chdir(dir)
	for _, tt := range []struct {
		name, pathEnv, argv0, wantPath string
	}{
		{"empty PATH element", "/nonexistent::/nonexistent", "prog", "./prog"},
		{"trailing empty PATH element", "/nonexistent:", "prog", "./prog"},
		{"dot in PATH", ".", "prog", "./prog"},
		{"relative path", "/nonexistent", "./prog", "./prog"},
		{"relative path with directory", "/nonexistent", "../" + filepath.Base(dir) + "/prog", "../" + filepath.Base(dir) + "/prog"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := entry.Plan([]string{"PATH=" + tt.pathEnv}, []string{tt.argv0})
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if got.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q", got.Path, tt.wantPath)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	bin := t.TempDir()
	writeFile(t, bin, "data", 0o644)
	prog := writeFile(t, bin, "prog", 0o755)
	path := "PATH=" + bin
	ep := func(json string) string { return entry.EntrypointEnv + "=" + json }

	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantErr  error  // checked with errors.Is when set
		wantMsg  string // the whole message, when set
		wantSub  string // part of the message
	}{
		{
			name:     "no command",
			env:      []string{path, ep(`[]`)},
			wantCode: 127,
			wantErr:  entry.ErrNoCommand,
			wantMsg:  "no command specified",
		},
		{
			name:     "no command, null and empty args",
			env:      []string{path, ep(`null`)},
			args:     []string{},
			wantCode: 127,
			wantErr:  entry.ErrNoCommand,
		},
		{
			name:     "no command, unset",
			env:      []string{path},
			wantCode: 127,
			wantErr:  entry.ErrNoCommand,
		},
		{
			name:     "not in PATH",
			env:      []string{path, ep(`["foo"]`)},
			args:     []string{"x"},
			wantCode: 127,
			wantErr:  entry.ErrNotFound,
			wantMsg:  `exec "foo": executable file not found in $PATH`,
		},
		{
			name:     "not executable in PATH",
			env:      []string{path},
			args:     []string{"data"},
			wantCode: 127,
			wantErr:  entry.ErrNotFound,
			wantMsg:  `exec "data": executable file not found in $PATH`,
		},
		{
			name:     "empty PATH searches nothing",
			env:      []string{"PATH="},
			args:     []string{"prog"},
			wantCode: 127,
			wantErr:  entry.ErrNotFound,
		},
		{
			name:     "empty argv[0]",
			env:      []string{path, ep(`[""]`)},
			wantCode: 127,
			wantErr:  entry.ErrNotFound,
			wantMsg:  `exec "": executable file not found in $PATH`,
		},
		{
			name:     "missing absolute path",
			env:      []string{path, ep(`["/nonexistent/prog"]`)},
			wantCode: 127,
			wantErr:  fs.ErrNotExist,
			wantMsg:  `exec "/nonexistent/prog": stat /nonexistent/prog: no such file or directory`,
		},
		{
			name:     "path through a file",
			env:      []string{path},
			args:     []string{prog + "/x"},
			wantCode: 127,
			wantSub:  "not a directory",
		},
		{
			name:     "absolute path not executable",
			env:      []string{path},
			args:     []string{filepath.Join(bin, "data")},
			wantCode: 126,
			wantErr:  fs.ErrPermission,
			wantMsg:  `exec "` + filepath.Join(bin, "data") + `": permission denied`,
		},
		{
			name:     "absolute path is a directory",
			env:      []string{path},
			args:     []string{bin + "/"},
			wantCode: 126,
			wantErr:  fs.ErrPermission,
		},
		{name: "malformed JSON", env: []string{path, ep(`["prog"`)}, args: []string{"prog"}, wantCode: 127, wantSub: entry.EntrypointEnv},
		{name: "not JSON", env: []string{path, ep(`/bin/sh -c x`)}, wantCode: 127, wantSub: "not a JSON array of strings"},
		{name: "JSON string", env: []string{path, ep(`"prog"`)}, wantCode: 127, wantSub: "not a JSON array of strings"},
		{name: "JSON object", env: []string{path, ep(`{"a":"b"}`)}, wantCode: 127, wantSub: "not a JSON array of strings"},
		{name: "JSON numbers", env: []string{path, ep(`["prog",1]`)}, wantCode: 127, wantSub: "not a JSON array of strings"},
		{name: "trailing data", env: []string{path, ep(`["prog"] ["x"]`)}, wantCode: 127, wantSub: "not a JSON array of strings"},
		{name: "blank", env: []string{path, ep(` `)}, args: []string{"prog"}, wantCode: 127, wantSub: "not a JSON array of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := entry.Plan(tt.env, tt.args)
			if err == nil {
				t.Fatalf("Plan = %+v, want an error", got)
			}
			var e *entry.Error
			if !errors.As(err, &e) {
				t.Fatalf("Plan error %v (%T) is not an *entry.Error", err, err)
			}
			if e.Code != tt.wantCode {
				t.Errorf("Code = %d, want %d (%v)", e.Code, tt.wantCode, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("error %q does not mention %q", err, tt.wantSub)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

// TestExecErrors only uses commands the kernel refuses: a success would
// replace the test binary.
func TestExecErrors(t *testing.T) {
	dir := t.TempDir()
	noExec := writeFile(t, dir, "data", 0o644)
	badFormat := filepath.Join(dir, "garbage")
	if err := os.WriteFile(badFormat, []byte("neither ELF nor #!\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noInterp := writeFile(t, dir, "script", 0o755) // #!/nonexistent

	for _, tt := range []struct {
		name     string
		path     string
		wantCode int
		wantSub  string
	}{
		{"missing", filepath.Join(dir, "missing"), 127, "no such file or directory"},
		{"missing interpreter", noInterp, 127, "no such file or directory"},
		{"no execute bit", noExec, 126, "permission denied"},
		{"directory", dir, 126, "permission denied"},
		{"exec format", badFormat, 126, "exec format error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := entry.Exec(entry.Command{Path: tt.path, Args: []string{tt.path}, Env: []string{}})
			var e *entry.Error
			if !errors.As(err, &e) {
				t.Fatalf("Exec error %v (%T) is not an *entry.Error", err, err)
			}
			if e.Code != tt.wantCode {
				t.Errorf("Code = %d, want %d (%v)", e.Code, tt.wantCode, err)
			}
			want := `exec "` + tt.path + `": ` + tt.wantSub
			if err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}
