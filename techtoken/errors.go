package techtoken

import "errors"

// Refusals. Every error of this package wraps one of them.
var (
	ErrMalformed    = errors.New("techtoken: malformed token")
	ErrTooLarge     = errors.New("techtoken: token too large")
	ErrSigner       = errors.New("techtoken: token not signed by a technician authority key")
	ErrSignature    = errors.New("techtoken: token signature does not verify")
	ErrAudience     = errors.New("techtoken: token not for this node")
	ErrExpired      = errors.New("techtoken: token expired")
	ErrNotYetValid  = errors.New("techtoken: token not yet valid")
	ErrValidity     = errors.New("techtoken: token validity window not allowed")
	ErrClockInvalid = errors.New("techtoken: node clock not known to be valid")
	ErrScope        = errors.New("techtoken: token lacks the scope")
	ErrRevoked      = errors.New("techtoken: token revoked")
	ErrNonce        = errors.New("techtoken: unknown or already used challenge (replay)")
	ErrNonceExpired = errors.New("techtoken: challenge expired")
	ErrAnswer       = errors.New("techtoken: answer not signed by the token's key")
	ErrLine         = errors.New("techtoken: malformed login line")
	ErrRoleOverlap  = errors.New("techtoken: a key is trusted both for packages and for technicians")
)
