// Package defaultlayer is the layer tower-reg appends when it is given no
// layer directory: a greeting in /foo.txt and, for linux/amd64 and
// linux/arm64 images, the entry at layer.EntryPath.
//
// The tree is payload/, embedded in the binary, laid out as any layer
// directory (see layer.PackSet):
//
//	payload/foo.txt                                   every platform
//	payload/.platforms/linux_amd64/.towerreg/entry    linux/amd64 only
//	payload/.platforms/linux_arm64/.towerreg/entry    linux/arm64 only
//
// The entry binaries are built by `make layer` from ./cmd/towerreg-entry and
// are not committed (payload/.platforms/.gitignore, which PackSet ignores as
// a dotfile, keeps them out and keeps the directory in git). Without them the
// package still builds; Missing lists the platforms whose images then keep
// their own entrypoint.
package defaultlayer
