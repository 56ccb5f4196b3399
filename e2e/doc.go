// Package e2e holds tower-reg's end-to-end tests: real clients (skopeo,
// crane, podman) pull images built offline in Go from a real upstream
// registry (Debian's docker-registry, distribution 2.8), directly and through
// a towerreg-dev daemon built from this tree.
//
// All traffic stays on 127.0.0.1. Every server and store lives in the test's
// temporary directory and is stopped or reset when the test ends.
//
// The tests need external tools. Without one they skip with a loud reason,
// unless CI is set or TOWERREG_E2E=require, where a missing tool fails the
// test. See README.md in this directory for how to run them.
//
// The package has no non-test code: this file only documents it.
package e2e
