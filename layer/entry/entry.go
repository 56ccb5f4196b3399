package entry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// EntrypointEnv names the variable that carries the image's original
// Entrypoint as a JSON array. It must equal layer.EntrypointEnv, which the
// proxy writes; it is duplicated so the entry does not link package layer
// and its dependencies (a test keeps the two equal).
const EntrypointEnv = "TOWERREG_ENTRYPOINT"

// DefaultPath is the search path used when the environment has no PATH at
// all, the one Docker gives a container whose image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// The exit statuses are those docker run reports when a container's command
// cannot be started, which users and scripts already know.
const (
	exitNotFound  = 127
	exitCannotRun = 126
)

var (
	// ErrNoCommand reports that neither the original Entrypoint nor the
	// arguments name a program.
	ErrNoCommand = errors.New("no command specified")
	// ErrNotFound reports that a program name without a slash is in no
	// directory of PATH.
	ErrNotFound = errors.New("executable file not found in $PATH")
)

// Command is a program to start, in the terms of execve(2).
type Command struct {
	// Path is the file to execute: Args[0] itself when it has a slash,
	// else where it was found in PATH.
	Path string
	// Args is the argument vector, Args[0] included, exactly as the
	// original program expects it.
	Args []string
	// Env is the environment the entry received, without EntrypointEnv.
	Env []string
}

// Error is a reason the original program cannot be started, with the exit
// status the entry reports for it.
type Error struct {
	// Code is the exit status: 127 when there is no program to run, 126
	// when there is one but it cannot be executed.
	Code int
	// Err is the cause.
	Err error
}

// Error returns the cause's message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Plan works out the command the container would have run without the
// entry: the original Entrypoint, read from env, followed by args (the
// entry's own arguments, which the runtime fills from Cmd or from the
// command line). Arguments are passed through verbatim: there is no shell
// to split or expand them. All errors are *Error.
//
// An unset EntrypointEnv is treated like an empty one, so running the entry
// by hand with a full command works too.
func Plan(env, args []string) (Command, error) {
	entrypoint, env, err := takeEntrypoint(env)
	if err != nil {
		return Command{}, err
	}
	argv := make([]string, 0, len(entrypoint)+len(args))
	argv = append(append(argv, entrypoint...), args...)
	if len(argv) == 0 {
		// Docker refuses to create such a container ("no command
		// specified", docker run exits 125), so the image never ran
		// anything. The entry only learns it once the container has
		// started, where the closest status it can give is "command not
		// found".
		return Command{}, &Error{Code: exitNotFound, Err: ErrNoCommand}
	}
	pathEnv, ok := lookupEnv(env, "PATH")
	if !ok {
		pathEnv = DefaultPath
	}
	path, err := lookPath(argv[0], pathEnv)
	if err != nil {
		return Command{}, err
	}
	return Command{Path: path, Args: argv, Env: env}, nil
}

// Exec replaces the current process with c, so the original program keeps
// the entry's PID (1 in a container) and receives signals directly, and its
// exit status is the container's. It returns only on failure, with an
// *Error.
func Exec(c Command) error {
	return execError(c.Path, syscall.Exec(c.Path, c.Args, c.Env))
}

// takeEntrypoint decodes the original Entrypoint and returns env without
// any EntrypointEnv entry, so the original program sees the environment it
// would have had. A malformed value is an error rather than "no
// entrypoint": running the arguments alone would start some other program
// than the image's.
func takeEntrypoint(env []string) (entrypoint, rest []string, err error) {
	value, rest := takeEnv(env, EntrypointEnv)
	if value == "" {
		return nil, rest, nil
	}
	if err := json.Unmarshal([]byte(value), &entrypoint); err != nil {
		return nil, nil, &Error{
			Code: exitNotFound,
			Err:  fmt.Errorf("%s=%q is not a JSON array of strings: %w", EntrypointEnv, value, err),
		}
	}
	return entrypoint, rest, nil
}

// lookupEnv is os.LookupEnv over env rather than the entry's own
// environment: the program must be found in the PATH it will run with.
func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// lookPath finds file as runc does (with os/exec.LookPath): a name with a
// slash is used as is, relative to the working directory; any other is
// searched in pathEnv, where an empty element means the working directory.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", execError(file, err)
		}
		return file, nil
	}
	if file != "" {
		for _, dir := range filepath.SplitList(pathEnv) {
			if dir == "" {
				dir = "."
			}
			path := filepath.Join(dir, file)
			if !strings.Contains(path, "/") {
				// execve would find it in the working directory too,
				// but "./" makes Command.Path say so.
				path = "./" + path
			}
			if checkExecutable(path) == nil {
				return path, nil
			}
		}
	}
	return "", &Error{Code: exitNotFound, Err: fmt.Errorf("exec %q: %w", file, ErrNotFound)}
}

// checkExecutable reports whether path is a file with an execute bit. The
// kernel has the last word (ownership, noexec mounts): Exec reports what it
// refuses.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// execError wraps a failure to start file with the status docker run would
// give it: 127 when it does not exist (including a script whose interpreter
// does not), 126 when it exists but cannot be executed.
func execError(file string, err error) error {
	code := exitCannotRun
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		code = exitNotFound
	}
	return &Error{Code: code, Err: fmt.Errorf("exec %q: %w", file, err)}
}
