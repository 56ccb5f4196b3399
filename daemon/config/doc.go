// Package config reads the daemon's YAML config file and turns its
// per-registry credentials into a keychain.
package config
