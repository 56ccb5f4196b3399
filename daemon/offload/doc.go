// Package offload uploads the blobs the daemon must serve itself (the
// injected layers of each generation) to an S3-compatible store, once, and
// hands out presigned GET URLs for them, so that public clients fetch those
// bytes from the store rather than through the developer's uplink.
//
// Objects are content-addressed under PREFIX/blobs/sha256/<hex> and never
// overwritten: an object already there with the blob's size counts as
// uploaded. Uploads run in the background with bounded concurrency; their
// state is kept per digest. Location answers only for a digest whose upload
// completed and whose object was seen within the last minute (a HEAD,
// cached), so that an object removed by a lifecycle rule is not handed out
// for long, and is uploaded again.
//
// The offload never fails a pull: a store that is down or refuses is a
// warning (logged once per kind of failure, and an event), and Location
// says no, so that the caller streams the blob itself.
package offload
