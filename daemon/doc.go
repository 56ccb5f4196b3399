// Package daemon wires the parts of towerreg-dev together and runs them:
// the content store, the packed layer, the upstream client, the rewriting
// proxy and the HTTP server. The parts live in the sub-packages; this
// package only builds them from a configuration and runs them under one
// context.
package daemon
