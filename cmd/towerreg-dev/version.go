package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/tower-reg/tower-reg/daemon"
)

func version(w io.Writer) error {
	v := daemon.Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		v = buildVersion(bi)
	}
	_, err := fmt.Fprintln(w, "towerreg-dev", v)
	return err
}

// buildVersion is the version of a binary built without the linker flag
// of `make build`: the module version `go install …@VERSION` records, or
// "dev" and the commit of a build in a git checkout.
func buildVersion(bi *debug.BuildInfo) string {
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
		return mv
	}
	v := "dev"
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
