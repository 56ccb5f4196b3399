package entry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// UserEnv names the variable that carries the image's own User, which the
// proxy moved out of the config so that the container starts as root and
// can mount. It must equal layer.UserEnv (a test keeps the two equal).
const UserEnv = "TOWERREG_USER"

// maxID is the largest uid or gid runc accepts.
const maxID = 1<<31 - 1

var (
	// ErrNoPasswdEntry reports a user name that /etc/passwd lacks.
	ErrNoPasswdEntry = errors.New("no matching entries in passwd file")
	// ErrNoGroupEntry reports a group name that /etc/group lacks.
	ErrNoGroupEntry = errors.New("no matching entries in group file")
)

// User is who the image's program runs as.
type User struct {
	UID, GID int
	// Groups are the supplementary groups, without GID unless the group
	// file lists the user in it.
	Groups []int
	// Home is the home directory from the passwd file, "/" without one.
	Home string
	// startHome is the HOME the runtime gave the container, which started
	// as root; set by ImageUser.
	startHome string
}

// ImageUser works out who the image's program runs as, for an entry
// running as euid with root as the image's root directory: nil when it
// stays who the entry is. That is when the image has no User (spec is ""),
// and when the entry is not root: the runtime was told another user
// (docker run --user), and only root can switch. Errors are *Error.
func ImageUser(root, spec string, euid int) (*User, error) {
	if spec == "" || euid != 0 {
		return nil, nil
	}
	fail := func(err error) (*User, error) {
		return nil, &Error{Code: exitCannotRun, Err: fmt.Errorf("%s=%q: %w", UserEnv, spec, err)}
	}
	// The files are read once for both lookups: this runs at every start.
	db, err := readUserDB(root)
	if err != nil {
		return fail(err)
	}
	u, err := db.lookup(spec)
	if err != nil {
		return fail(err)
	}
	// What the runtime resolved for the "0:0" the proxy gave it.
	started, err := db.lookup("0:0")
	if err != nil {
		return fail(err)
	}
	u.startHome = started.Home
	return &u, nil
}

// passwdEntry and groupEntry are the fields of the two files that matter.
type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// TakeUser returns the value of UserEnv, "" when unset, and env without
// it: the image's program sees the environment it would have had.
func TakeUser(env []string) (spec string, rest []string) {
	return takeEnv(env, UserEnv)
}

// takeEnv returns the value of the variable name, "" when unset, and env
// without any entry of it. The first entry wins, as with getenv(3).
func takeEnv(env []string, name string) (value string, rest []string) {
	prefix := name + "="
	found := false
	rest = make([]string, 0, len(env))
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, prefix)
		if !ok {
			rest = append(rest, kv)
			continue
		}
		if !found {
			value, found = v, true
		}
	}
	return value, rest
}

// userDB is what an image's passwd and group files list.
type userDB struct {
	users  []passwdEntry
	groups []groupEntry
}

// readUserDB reads root/etc/passwd and root/etc/group; either file may be
// missing, as in images without a libc.
func readUserDB(root string) (userDB, error) {
	passwd, err := openOptional(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return userDB{}, err
	}
	defer passwd.Close()
	group, err := openOptional(filepath.Join(root, "etc/group"))
	if err != nil {
		return userDB{}, err
	}
	defer group.Close()
	return parseUserDB(passwd, group)
}

func parseUserDB(passwd, group io.Reader) (userDB, error) {
	users, err := parsePasswd(passwd)
	if err != nil {
		return userDB{}, err
	}
	groups, err := parseGroup(group)
	if err != nil {
		return userDB{}, err
	}
	return userDB{users: users, groups: groups}, nil
}

// openOptional opens path, or an empty file when it does not exist.
func openOptional(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

// LookupUser resolves a config's User ("user", "uid", "user:group",
// "uid:gid" and the mixed forms) the way runc does, so that the program
// runs as the user it would have run as without the proxy: a name must be
// in passwd; a uid not in passwd gets gid 0 and home "/"; without an
// explicit group, the supplementary groups are those group lists the
// user's name in; with one, there are none.
func LookupUser(spec string, passwd, group io.Reader) (User, error) {
	db, err := parseUserDB(passwd, group)
	if err != nil {
		return User{}, err
	}
	return db.lookup(spec)
}

func (db userDB) lookup(spec string) (User, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	u := User{Home: "/"}
	name, err := u.setUser(userArg, db.users)
	if err != nil {
		return User{}, err
	}
	if groupArg != "" {
		return u, u.setGroup(groupArg, db.groups)
	}
	if name == "" {
		return u, nil
	}
	for _, g := range db.groups {
		for _, m := range g.members {
			if m == name {
				u.Groups = append(u.Groups, g.gid)
				break
			}
		}
	}
	return u, nil
}

// setUser sets u from userArg and returns the passwd name it matched, ""
// for a uid that passwd lacks.
func (u *User) setUser(userArg string, users []passwdEntry) (string, error) {
	uid, numErr := strconv.Atoi(userArg)
	match := func(p passwdEntry) bool {
		switch {
		case userArg == "":
			return p.uid == 0
		case numErr == nil:
			return p.uid == uid
		default:
			return p.name == userArg
		}
	}
	for _, p := range users {
		if match(p) {
			u.UID, u.GID, u.Home = p.uid, p.gid, p.home
			return p.name, nil
		}
	}
	switch {
	case userArg == "":
		return "", nil // root, as runc's default
	case numErr != nil:
		return "", fmt.Errorf("unable to find user %s: %w", userArg, ErrNoPasswdEntry)
	case uid < 0 || uid > maxID:
		return "", fmt.Errorf("uid %s is out of range", userArg)
	}
	u.UID = uid
	return "", nil
}

// setGroup sets u's primary group from an explicit groupArg.
func (u *User) setGroup(groupArg string, groups []groupEntry) error {
	gid, numErr := strconv.Atoi(groupArg)
	for _, g := range groups {
		if (numErr == nil && g.gid == gid) || (numErr != nil && g.name == groupArg) {
			u.GID = g.gid
			return nil
		}
	}
	switch {
	case numErr != nil:
		return fmt.Errorf("unable to find group %s: %w", groupArg, ErrNoGroupEntry)
	case gid < 0 || gid > maxID:
		return fmt.Errorf("gid %s is out of range", groupArg)
	}
	u.GID = gid
	return nil
}

// parsePasswd reads name:password:uid:gid:gecos:home:shell lines. A line
// without a numeric uid and gid is skipped: nothing could match it safely.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	err := eachLine(r, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid, home: "/"}
		if len(f) > 5 && f[5] != "" {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

// parseGroup reads name:password:gid:member,member lines.
func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	err := eachLine(r, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out, err
}

// eachLine calls fn with the colon-separated fields of each line that is
// neither blank nor a comment.
func eachLine(r io.Reader, fn func(fields []string)) error {
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("read user database: %w", err)
	}
	return nil
}

// WithHome returns env with HOME set to u's home where the runtime set it
// for root: the container started as root only because of the proxy, and
// the runtime gives a container without HOME the home of the user it
// starts as. A HOME the image or the user chose is kept, unless it is
// exactly root's home, which cannot be told from the runtime's.
func (u User) WithHome(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if u.startHome != "" && kv == "HOME="+u.startHome {
			kv = "HOME=" + u.Home
		}
		out = append(out, kv)
	}
	return out
}
