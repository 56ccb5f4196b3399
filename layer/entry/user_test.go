package entry_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tower-reg/tower-reg/layer"
	"github.com/tower-reg/tower-reg/layer/entry"
)

func TestUserEnvMatchesLayer(t *testing.T) {
	if entry.UserEnv != layer.UserEnv {
		t.Fatalf("entry.UserEnv = %q, layer.UserEnv = %q: the proxy and the entry disagree", entry.UserEnv, layer.UserEnv)
	}
}

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
broken:x:notanumber:1:::
dup:x:1000:5::/elsewhere:
`

const testGroup = `root:x:0:
wheel:x:10:root,app
app:x:1000:
extra:x:2000:daemon,app
audio:x:29:nohome
`

func TestLookupUser(t *testing.T) {
	tests := []struct {
		spec          string
		passwd, group string
		want          entry.User
	}{
		{spec: "app", want: entry.User{UID: 1000, GID: 1000, Groups: []int{10, 2000}, Home: "/home/app"}},
		{spec: "1000", want: entry.User{UID: 1000, GID: 1000, Groups: []int{10, 2000}, Home: "/home/app"}},
		{spec: "root", want: entry.User{UID: 0, GID: 0, Groups: []int{10}, Home: "/root"}},
		{spec: "0", want: entry.User{UID: 0, GID: 0, Groups: []int{10}, Home: "/root"}},
		// An explicit group replaces the primary group and drops the
		// supplementary ones, as runc does.
		{spec: "app:extra", want: entry.User{UID: 1000, GID: 2000, Home: "/home/app"}},
		{spec: "app:29", want: entry.User{UID: 1000, GID: 29, Home: "/home/app"}},
		{spec: "1000:4242", want: entry.User{UID: 1000, GID: 4242, Home: "/home/app"}},
		{spec: "0:0", want: entry.User{UID: 0, GID: 0, Home: "/root"}},
		// A uid passwd lacks: gid 0, home /, no groups.
		{spec: "4242", want: entry.User{UID: 4242, GID: 0, Home: "/"}},
		{spec: "4242:4343", want: entry.User{UID: 4242, GID: 4343, Home: "/"}},
		{spec: "4242:app", want: entry.User{UID: 4242, GID: 1000, Home: "/"}},
		{spec: "nohome", want: entry.User{UID: 1001, GID: 1001, Groups: []int{29}, Home: "/"}},
		// No user part: root, as runc's default.
		{spec: ":extra", want: entry.User{UID: 0, GID: 2000, Home: "/root"}},
		// The first entry of a uid wins.
		{spec: "dup", want: entry.User{UID: 1000, GID: 5, Home: "/elsewhere"}},
		// Images without the files (scratch, distroless static).
		{spec: "1000", passwd: "-", group: "-", want: entry.User{UID: 1000, GID: 0, Home: "/"}},
		{spec: "1000:1000", passwd: "-", group: "-", want: entry.User{UID: 1000, GID: 1000, Home: "/"}},
		{spec: "app", group: "-", want: entry.User{UID: 1000, GID: 1000, Home: "/home/app"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := entry.LookupUser(tt.spec, strings.NewReader(orDefault(tt.passwd, testPasswd)), strings.NewReader(orDefault(tt.group, testGroup)))
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tt.want.UID || got.GID != tt.want.GID || got.Home != tt.want.Home || !slices.Equal(got.Groups, tt.want.Groups) {
				t.Errorf("LookupUser(%q) = %+v, want %+v", tt.spec, got, tt.want)
			}
		})
	}
}

// orDefault gives def for "", and an empty file for "-".
func orDefault(s, def string) string {
	switch s {
	case "":
		return def
	case "-":
		return ""
	}
	return s
}

func TestLookupUserErrors(t *testing.T) {
	tests := []struct {
		spec    string
		passwd  string
		wantErr error
		wantMsg string
	}{
		{spec: "nobody", wantErr: entry.ErrNoPasswdEntry, wantMsg: "unable to find user nobody: no matching entries in passwd file"},
		{spec: "app", passwd: "-", wantErr: entry.ErrNoPasswdEntry},
		{spec: "app:nogroup", wantErr: entry.ErrNoGroupEntry, wantMsg: "unable to find group nogroup: no matching entries in group file"},
		{spec: "broken", wantErr: entry.ErrNoPasswdEntry},
		{spec: "-1", wantMsg: "uid -1 is out of range"},
		{spec: "2147483648", wantMsg: "uid 2147483648 is out of range"},
		{spec: "1000:-5", wantMsg: "gid -5 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := entry.LookupUser(tt.spec, strings.NewReader(orDefault(tt.passwd, testPasswd)), strings.NewReader(testGroup))
			if err == nil {
				t.Fatalf("LookupUser(%q) = %+v, want an error", tt.spec, got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

func TestTakeUser(t *testing.T) {
	for _, tt := range []struct {
		env      []string
		wantSpec string
		wantRest []string
	}{
		{[]string{"A=1"}, "", []string{"A=1"}},
		{[]string{"A=1", "TOWERREG_USER=app", "B=2"}, "app", []string{"A=1", "B=2"}},
		{[]string{"TOWERREG_USER=1000:1000", "TOWERREG_USER=root"}, "1000:1000", []string{}},
		{[]string{"TOWERREG_USER=", "TOWERREG_USERX=1"}, "", []string{"TOWERREG_USERX=1"}},
	} {
		spec, rest := entry.TakeUser(slices.Clone(tt.env))
		if spec != tt.wantSpec || !slices.Equal(rest, tt.wantRest) {
			t.Errorf("TakeUser(%q) = %q, %q; want %q, %q", tt.env, spec, rest, tt.wantSpec, tt.wantRest)
		}
	}
}

// imageRoot lays out an image's /etc with passwd and group.
func imageRoot(t *testing.T, passwd, group string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"passwd": passwd, "group": group} {
		if body == "-" {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestImageUser(t *testing.T) {
	root := imageRoot(t, testPasswd, testGroup)
	bare := imageRoot(t, "-", "-")
	tests := []struct {
		name     string
		root     string
		spec     string
		euid     int
		want     *entry.User
		env      []string
		wantEnv  []string
		wantCode int
	}{
		{name: "no User: stays root", root: root, spec: "", euid: 0},
		{name: "not root: the runtime chose", root: root, spec: "app", euid: 1234},
		{name: "by name, HOME moved from root's", root: root, spec: "app", euid: 0,
			want: &entry.User{UID: 1000, GID: 1000, Groups: []int{10, 2000}, Home: "/home/app"},
			env:  []string{"A=1", "HOME=/root"}, wantEnv: []string{"A=1", "HOME=/home/app"}},
		{name: "a HOME of the image's own is kept", root: root, spec: "app", euid: 0,
			want: &entry.User{UID: 1000, GID: 1000, Groups: []int{10, 2000}, Home: "/home/app"},
			env:  []string{"HOME=/data"}, wantEnv: []string{"HOME=/data"}},
		{name: "no passwd: numeric, HOME / stays", root: bare, spec: "1000", euid: 0,
			want: &entry.User{UID: 1000, GID: 0, Home: "/"},
			env:  []string{"HOME=/"}, wantEnv: []string{"HOME=/"}},
		{name: "no passwd: a name cannot run", root: bare, spec: "app", euid: 0, wantCode: 126},
		{name: "unknown user", root: root, spec: "ghost", euid: 0, wantCode: 126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := entry.ImageUser(tt.root, tt.spec, tt.euid)
			if tt.wantCode != 0 {
				var e *entry.Error
				if !errors.As(err, &e) || e.Code != tt.wantCode || !strings.Contains(err.Error(), entry.UserEnv) {
					t.Fatalf("ImageUser = %+v, %v; want an *entry.Error %d naming %s", got, err, tt.wantCode, entry.UserEnv)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("ImageUser = %+v, want %+v", got, tt.want)
			}
			if got == nil {
				return
			}
			if got.UID != tt.want.UID || got.GID != tt.want.GID || got.Home != tt.want.Home || !slices.Equal(got.Groups, tt.want.Groups) {
				t.Errorf("ImageUser = %+v, want %+v", got, tt.want)
			}
			if env := got.WithHome(tt.env); !slices.Equal(env, tt.wantEnv) {
				t.Errorf("WithHome(%q) = %q, want %q", tt.env, env, tt.wantEnv)
			}
		})
	}
}
