// Package api is the daemon's HTTP surface: the OCI distribution read API
// (/v2/...) in front of the rewriting proxy, and the local admin routes.
//
// Handlers return errors. One wrapper per handler turns them into answers
// (Registry.finish, which also publishes a route's event, and
// Admin.handle), through writeError; and one table, classifyTable, picks
// the status and OCI code of every error, with rows of their own for the
// routes where an error means something else. So no handler picks a
// status code for a failure on its own.
//
// The handlers hold the proxy behind the small interfaces of sources.go
// (manifests, blobs, tags, credentials), declared here where they are
// consumed: the handlers' tests answer them with fakes.
package api
