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
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	_, err := fmt.Fprintln(w, "towerreg-dev", v)
	return err
}
