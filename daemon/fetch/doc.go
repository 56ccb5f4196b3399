// Package fetch downloads the layers named in container-token requests and
// stores them only once they proved to be what the request said.
//
// A location is https, plain http to a loopback host, or a file:// URL with
// an absolute path (what `towerreg-dev pack` prints). The layer streams
// through the checks into the content store: its exact gzip size, the sha256
// of the gzip bytes and the sha256 of the tar inside are checked on the way,
// and the blob is committed only when all three match, so a bad or partial
// download never lands in the store and memory stays flat whatever the size.
//
// The HTTP client is the package's own: no proxy from the environment, no
// cookie jar, no credentials and no Authorization header, a bounded number of
// redirects that may not step to a scheme or host class that a location could
// not name itself, and timeouts on headers and on the whole transfer.
package fetch
