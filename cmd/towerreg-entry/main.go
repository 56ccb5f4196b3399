// Command towerreg-entry is the entry that tower-reg puts at
// /.towerreg/entry in every image it serves. It execs the image's original
// Entrypoint and Cmd, as if it had never been injected; see package
// layer/entry.
//
// It must stay small and static: it is copied into every image and runs in
// images without a shell or libc.
package main

import (
	"errors"
	"os"

	"github.com/tower-reg/tower-reg/layer/entry"
)

func main() {
	// Prepare step: work that must happen before the original program
	// starts goes here (the Fusion FUSE server, when NXF_FUSION_BUCKETS is
	// set). It comes before Plan because Plan resolves the program's path,
	// which may lie on a mount prepared here; and it cannot be left running
	// in this process, which Exec replaces.
	cmd, err := entry.Plan(os.Environ(), os.Args[1:])
	if err == nil {
		err = entry.Exec(cmd)
	}
	exit(err)
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
