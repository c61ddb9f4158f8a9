// Package store is the node's package store: it fetches a signed package
// from a Remote (an HTTP(S) server with Range requests, or the head-end's
// in-band MQTT block stream) into a directory on a file system that
// survives power loss, so that a cut link, a broker restart or a power cut
// resumes at the last verified block, never from zero.
//
// The order of a fetch, each step persisted before the next:
//
//  1. The manifest entry (the first tar entry of the package) is fetched
//     and its signature, expiry and sequence number are checked before any
//     field of it is used; it is kept as manifest.cose.
//  2. The package's tar headers are walked (512 bytes each, by Range), so
//     the node knows where each entry lies without fetching payloads it
//     does not need: a tailored package, or the skip delta the node does
//     not take, costs it nothing but a header.
//  3. The caller's Select names the payloads this node needs; their total
//     size must fit the store (Options.MaxBytes) before the first payload
//     byte is fetched.
//  4. For each needed payload with block digests (manifest schema 2), the
//     block list is fetched and checked against the signed root, then the
//     missing blocks are fetched in windows; every block is checked on
//     arrival, and a bad one is refused and asked for again on its own. A
//     block's data is synced before its number is appended to the
//     payload's record of blocks held (the bitmap), so after a power cut
//     only the blocks not recorded are asked for again.
//  5. Every payload is hashed whole against the manifest's digest.
//
// A payload of a schema-1 manifest has no block digests: it is fetched in
// order and checked only whole; a mismatch discards it.
//
// The files of one fetch live in one directory (Options.Dir); payload files
// are named after the manifest's payload names (which manifest.Validate
// restricts to safe names) with a "p-" prefix, so no payload can take the
// name of the store's own files.
package store
