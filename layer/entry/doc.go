// Package entry is the logic of the entry binary that tower-reg appends to
// every image at layer.EntryPath (/.towerreg/entry).
//
// The proxy rewrites each image config so that the entry is the Entrypoint,
// Cmd is unchanged, and the original Entrypoint travels as JSON in the
// EntrypointEnv variable. When the container starts, the entry therefore
// receives the container's arguments (Cmd, or what the user gave to
// docker run) and must start exactly what the image would have started
// without the injection: Plan works that out and Exec replaces the entry
// with it.
//
// The container starts as root so that the entry can mount (the proxy
// moves an image's User into UserEnv): ExecAs runs the program as the
// image's own user, resolved from the image's /etc/passwd and /etc/group
// by LookupUser as runc would, and, after a mount, without CAP_SYS_ADMIN.
//
// The entry runs in arbitrary images, including ones with no shell and no
// libc (scratch, distroless), so it never calls a shell and its binary is
// static. It imports only the standard library and golang.org/x/sys/unix;
// in particular it does not import package layer, which would link the
// registry client into every image.
package entry
