// Package token is the model of container tokens: the request and answer of
// POST /container-token, the tokens themselves, the store that keeps what
// each token stands for across daemon restarts, and the Service that issues
// them (resolving the image, fetching the layers) and resolves them for the
// registry.
//
// A token is a bearer name for one upstream image with a fixed set of layers
// and config changes. Only the sha256 of a token is kept, in memory and on
// disk: a copy of the state directory names no token that would pull
// anything. Messages and logs show a token's first characters only (Short).
package token
