// Package api is the daemon's HTTP surface: the OCI distribution read API
// (/v2/...) in front of the rewriting proxy, and the local admin routes.
//
// Handlers return errors; one function, writeError, turns every error into
// OCI error JSON with the right status, so no handler picks a status code for
// a failure on its own.
package api
