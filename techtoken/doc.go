// Package techtoken is the field technician's offline login: tokens the
// utility signs, and the challenge-response a node checks at its console
// without any network.
//
// # Token
//
// A token is a tagged COSE_Sign1 (the envelope rules of package manifest:
// protected header with exactly alg and kid, empty unprotected header,
// Ed25519 or P-256) over a CBOR Web Token claims set (RFC 8392):
//
//	1 iss  text     who issued it (the utility's name for its key)
//	2 sub  text     the technician
//	3 aud  [+ text] the nodes and groups it is good for: "node:ID" or
//	                "group:NAME". RFC 8392 has one audience (a text
//	                string); we carry a list, always an array, even of one.
//	4 exp  int      NumericDate (seconds), end of validity
//	5 nbf  int      start of validity
//	6 iat  int      when it was issued
//	7 cti  bytes    token id (16 random bytes), what a revocation names
//	8 cnf  {1: COSE_Key}  proof-of-possession key (RFC 8747): the
//	                technician's public key; the token is useless without
//	                the matching private key
//	9 scope text    space-separated scopes (RFC 9200's scope claim):
//	                install, activate, rollback, commit
//
// Every claim is required but iss; any other key is refused. Times are
// integers. Decoding has explicit limits: at most MaxTokenSize bytes,
// nesting 4, arrays of MaxAudience, maps of 16 pairs, no indefinite
// lengths, no tags inside the claims, duplicate keys refused.
//
// Tokens are signed by a technician authority key. A node keeps those keys
// in a keyring of their own (a manifest.Keyring used only for tokens,
// provisioned with the node's configuration), apart from the keys that
// sign packages: a package key cannot log anyone in, a token key cannot
// sign a package. NewVerifier refuses a key found in both.
//
// # Login
//
// The node issues a challenge: NonceSize random bytes, single use, valid
// for ChallengeTTL. The technician's laptop signs, with the private key of
// the token's cnf, the CBOR array
//
//	["meterupd-login-v1", nonce, node id, SHA-256(token)]
//
// (EdDSA or ES256 by the key's type) and the technician pastes the line
//
//	login NONCE-HEX TOKEN-BASE64URL SIGNATURE-BASE64URL
//
// (base64url without padding, RFC 4648 section 5). The node takes the
// nonce (a second use is a replay), then checks the token's signature
// against the technician keyring, the audience (its id or one of its
// groups), the validity window with a clock skew allowance of Skew (a node
// whose clock is not known to be valid refuses: ErrClockInvalid), the cti
// against its revocation list, the answer's signature with the cnf key,
// and the scopes the session needs. Each refusal has its own error.
package techtoken
