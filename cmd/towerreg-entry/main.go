// Command towerreg-entry is the entry that tower-reg puts at
// /.towerreg/entry in every image it serves. It execs the image's original
// Entrypoint and Cmd, as if it had never been injected; see package
// layer/entry.
//
// With NXF_FUSION_BUCKETS set it first mounts those S3 buckets at
// /fusion/s3/<bucket> (package layer/fusion): it starts itself again as the
// FUSE server, waits for the mount, then execs as above. One static binary
// does both, so an image needs no shell, no libc and no fusermount.
//
// The program runs as the image's own USER, which the proxy moved into
// TOWERREG_USER so that the entry starts as root, and, after a mount,
// without CAP_SYS_ADMIN in any capability set.
//
// It must stay static: it is copied into every image and runs in images
// without a shell or libc.
package main

import (
	"context"
	"errors"
	"os"
	"time"

	// Public CA roots for images that have none (busybox, scratch):
	// used only when the system has no certificate store.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/tower-reg/tower-reg/layer/entry"
	"github.com/tower-reg/tower-reg/layer/fusion"
)

// exitMount is the status when the buckets cannot be mounted: the
// image's program must not run on an empty mount point.
const exitMount = 1

func main() {
	started := time.Now()
	if fusion.IsServer(os.Getenv) {
		os.Exit(fusion.Serve(os.Getenv, os.Stderr))
	}
	// The proxy made the container start as root so that the entry can
	// mount; the program runs as the image's own User.
	spec, env := entry.TakeUser(os.Environ())
	user, err := entry.ImageUser("/", spec, os.Geteuid())
	if err != nil {
		exit(err)
	}
	mounted := fusion.Enabled(os.Getenv)
	// The mount comes before Plan because Plan resolves the program's
	// path, which may lie on the mount.
	if mounted {
		uid, gid := owner(user)
		if err := fusion.Start(context.Background(), fusion.WithOwner(env, uid, gid), started); err != nil {
			os.Stderr.WriteString("towerreg-entry: fusion: " + err.Error() + "\n")
			os.Exit(exitMount)
		}
	}
	cmd, err := entry.Plan(env, os.Args[1:])
	if err == nil {
		if user != nil {
			cmd.Env = user.WithHome(cmd.Env)
		}
		// CAP_SYS_ADMIN was granted for the mount; without one, it is the
		// runtime's grant to the image's program, which the entry leaves
		// as it found it.
		err = entry.ExecAs(cmd, entry.Privileges{User: user, DropSysAdmin: mounted})
	}
	exit(err)
}

// owner is who the mounted files belong to: the user the program runs as.
func owner(u *entry.User) (uid, gid int) {
	if u == nil {
		return os.Geteuid(), os.Getegid()
	}
	return u.UID, u.GID
}

// exit reports why the original program could not be started, on one line
// as runc would, and exits with the matching status.
func exit(err error) {
	// Plan and Exec only return *entry.Error; 127 is a safe "could not run".
	code := 127
	var e *entry.Error
	if errors.As(err, &e) {
		code = e.Code
	}
	os.Stderr.WriteString("towerreg-entry: " + err.Error() + "\n")
	os.Exit(code)
}
