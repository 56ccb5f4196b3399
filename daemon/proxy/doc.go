// Package proxy fetches images from upstream registries and rewrites them
// to carry the injected layer.
//
// Upstream is the client: one authenticated transport per repository, reused
// across requests, over one shared connection pool. Rewriting is a decorator
// around it that turns every image and index it fetches into the rewritten
// form, keeps the result in the content store, and answers again from the
// store while the upstream digest and the layer stay the same. The HTTP
// handlers only see Manifest values; they never know a rewrite happened.
package proxy
