// Package layer builds the layer that tower-reg appends to every image and
// rewrites manifests, configs and indexes to carry it.
//
// Everything here is pure: packing reads an fs.FS and writes to an
// io.Writer, and the rewrite functions map bytes to bytes. The package never
// touches the network, a watcher or a terminal, so the daemon, the pack
// command and the tests all share one implementation (deps_test.go checks
// the imports).
package layer
