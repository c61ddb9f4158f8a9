// Package manifest reads and writes meterupd's signed update packages: the
// package description (manifest), its COSE signature, the trusted keyring,
// the container that carries the payloads, and the selection of the items
// and install path for one node.
//
// # Container
//
// A package is a POSIX ustar archive, so standard tools can list and
// unpack it (tar tvf pkg). The first entry is "manifest.cose", the signed
// manifest (at most MaxManifestSize bytes); the payload entries follow, one
// regular file per manifest item, in manifest order; then the two zero
// blocks that end a tar archive, and at most 64 KiB of zero padding. tar
// was chosen over a custom framing because it is streamable (a header
// before every entry, sizes known up front, no central directory at the
// end), every host has tools for it, and Go's archive/tar reads it without
// buffering ahead; its weak points (names, links, sizes) are closed by
// accepting only regular files whose name and size match the signed
// manifest exactly. An unsigned package ("manifest.cbor" first) is what
// `meterpkg build` writes when the signing key is on another host; nodes
// refuse it (ErrUnsigned).
//
// # Manifest
//
// The manifest is a CBOR map with small integer keys (see Manifest and
// Item for the labels), signed as a tagged COSE_Sign1 (RFC 9052) with
// Ed25519 (EdDSA, alg -8) or ECDSA P-256 (ES256, alg -7). The protected
// header carries exactly alg and kid (first 8 bytes of the SHA-256 of the
// key's PKIX encoding); the unprotected header is empty. Keys are never
// taken from the message: the kid selects a key of the node's Keyring and
// the key fixes the algorithm. A three-item manifest signed is about 800
// bytes (TestThreeItemManifestSize).
//
// Decoding sets fxamacker/cbor's limits explicitly: nesting depth 8, arrays
// of 128 elements, maps of 32 pairs, 16 KiB in all; duplicate map keys,
// indefinite lengths, tags and trailing bytes are refused. Non-negative
// keys are critical: an unknown one at any level rejects the manifest
// (ErrUnknownCritical); negative keys are optional extensions and are
// ignored. The schema is versioned (key 0); another version is refused.
//
// # Invariants
//
//   - No manifest field is acted on before the signature is verified:
//     OpenPackage reads the manifest entry (size-capped), verifies it over
//     the bytes as received, and only then decodes it.
//   - The sequence number must exceed the node's floor (ErrReplay,
//     ErrRollback). The caller persists the floor in the journal when the
//     update is committed, so an interrupted update can be resumed. A
//     target older than the installed version needs the signed Downgrade
//     flag.
//   - Every payload is hashed while it streams. A PayloadReader hands out
//     bytes before the end (the agent writes them to the idle slot), but
//     its final Read returns io.EOF only when the SHA-256 and size match
//     the manifest, and an error otherwise: nothing may be trusted before
//     io.EOF. The agent re-hashes the slot against TargetDigest before
//     arming it, so what is verified is what is installed.
//   - A payload entry not in the manifest, a listed payload missing, a size
//     different from the manifest (endless data), a bad name (../,
//     absolute, over-long, not a regular file), data after the archive: the
//     whole package is rejected. Errors are sticky.
//   - Every rejection wraps an exported sentinel (ErrXxx); decode errors on
//     a field are *FieldError naming it.
//
// # Selection
//
// Select picks the items that apply to a node (vendor, class, device type,
// hardware revision range and variant) and, per component, the cheapest
// route from the installed version to the target: delta items whose From
// is the current version and full images from anything, versions already
// passed skipped, fewest payload bytes then fewest hops (a skip delta
// v1→v3 wins over v1→v2→v3 when smaller). No route is ErrGap; a missing
// prerequisite is ErrPrerequisite. Package validate then runs the checks
// the manifest names for each planned item.
package manifest
