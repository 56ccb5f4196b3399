//go:build !unix

package daemon_test

import "testing"

func mkfifo(t *testing.T, _ string) {
	t.Skip("named pipes are a Unix file type")
}
