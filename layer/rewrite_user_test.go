package layer

import (
	"bytes"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestEntryUser spells out how injectUser moves the image's User into
// UserEnv, case by case.
func TestEntryUser(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no user", `{"Cmd":["sh"]}`, `{"Cmd":["sh"]}`},
		{"empty user", `{"User":"","Env":["A=1"]}`, `{"User":"","Env":["A=1"]}`},
		{"null user", `{"User":null}`, `{"User":null}`},
		{"numeric", `{"User":"1000"}`, `{"User":"0:0","Env":["TOWERREG_USER=1000"]}`},
		{"name", `{"User":"app","Env":["A=1"]}`, `{"User":"0:0","Env":["A=1","TOWERREG_USER=app"]}`},
		{"uid:gid", `{"Env":["A=1"],"User":"1000:2000"}`, `{"Env":["A=1","TOWERREG_USER=1000:2000"],"User":"0:0"}`},
		{"root by name", `{"User":"root"}`, `{"User":"0:0","Env":["TOWERREG_USER=root"]}`},
		{"key case kept", `{"user":"app"}`, `{"user":"0:0","Env":["TOWERREG_USER=app"]}`},
		{"rewritten before", `{"User":"0:0","Env":["TOWERREG_USER=app","B=2"]}`,
			`{"User":"0:0","Env":["TOWERREG_USER=app","B=2"]}`},
		{"built on a rewritten image, new USER", `{"User":"1000","Env":["TOWERREG_USER=app"]}`,
			`{"User":"0:0","Env":["TOWERREG_USER=1000"]}`},
		{"built on a rewritten image, USER 0", `{"User":"0","Env":["TOWERREG_USER=app"]}`,
			`{"User":"0:0","Env":["TOWERREG_USER=0"]}`},
		{"stale duplicates", `{"User":"app","Env":["TOWERREG_USER=x","A=1","TOWERREG_USER=y"]}`,
			`{"User":"0:0","Env":["TOWERREG_USER=app","A=1"]}`},
		{"no user, stale variable", `{"Env":["A=1","TOWERREG_USER=app","B=2","TOWERREG_USER=x"]}`,
			`{"Env":["A=1","B=2"]}`},
		{"similar name", `{"User":"app","Env":["TOWERREG_USER_X=1"]}`,
			`{"User":"0:0","Env":["TOWERREG_USER_X=1","TOWERREG_USER=app"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkEdit(t, injectUser, tc.in, tc.want) })
	}
}

func TestEntryUserErrors(t *testing.T) {
	for _, in := range []string{`{"User":1000}`, `{"User":"app","Env":[1]}`, `{"User":"app","Env":"A=1"}`} {
		o, err := parseObject([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if err := injectUser(o); err == nil {
			got, _ := marshal(o)
			t.Errorf("injectUser(%s) = %s, want an error", in, got)
		}
	}
}

// TestAppendImageUser: only a layer with an entry moves the User, since
// only the entry can switch back to it; and a re-pull of the rewritten
// image keeps the image's User, not RootUser.
func TestAppendImageUser(t *testing.T) {
	config := `{"rootfs":{"type":"layers","diff_ids":[]},"config":{"User":"app","Cmd":["/run"]}}`
	manifest := ociManifest(config, 0, types.OCILayer)
	plain, err := AppendImage(manifest, []byte(config), testBuilt(false))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(plain.Config, []byte(`"config":{"User":"app","Cmd":["/run"]}`)) {
		t.Errorf("without an entry the config changed: %s", plain.Config)
	}
	first, err := AppendImage(manifest, []byte(config), testBuilt(true))
	if err != nil {
		t.Fatal(err)
	}
	l := testBuilt(true)
	l.GzipDigest, l.TarDigest = testHash("second gzip"), testHash("second tar")
	second, err := AppendImage(first.Manifest, first.Config, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []Image{first, second} {
		want := `"User":"0:0","Cmd":["/run"],"Env":["TOWERREG_ENTRYPOINT=[]","TOWERREG_USER=app"],"Entrypoint":["/.towerreg/entry"]`
		if !bytes.Contains(img.Config, []byte(want)) {
			t.Errorf("config %s lacks %s", img.Config, want)
		}
	}
}
