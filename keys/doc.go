// Package keys manages the authorization server's JWS signing keys: it
// generates them, encrypts their private parts at rest, rotates them on a
// schedule shared by every instance, and publishes the public parts as a
// JWK Set.
//
// It is imported by the authserver package (to sign tokens and serve
// /jwks) and by cmd/authserver (for "keys list" and "keys rotate"). It
// imports only storage, for its types, plus go-jose v4 and x/crypto; it knows
// nothing about fosite or token formats and does not verify tokens itself:
// verifiers select a key with PublicKey or from the JWKS by "kid".
//
// # Lifecycle
//
// Every key goes through next → active → retired → deleted. Exactly one key
// is active (signs) at any time; next and retired keys are published in the
// JWKS and only verify.
//
//	       t0              t0+R−P            t0+R          t0+R+Ret
//	key A  |--- active ------------------------|--- retired ---|  deleted
//	key B                     |--- next -------|--- active -------- …
//	                          ^ created         ^ promoted
//
// With R the RotationPeriod, P the pre-publication window and Ret the
// retention window:
//
//	P   = JWKSMaxAge + ReloadInterval + SafetyMargin
//	Ret = TokenLifetime + ReloadInterval + SafetyMargin
//
// A next key is created when the active key is within P of the end of its
// period, and is promoted when its ActivateAt has come and it has been
// published for at least P. By then every JWKS a verifier may still have
// cached (at most JWKSMaxAge old, fetched from an instance at most
// ReloadInterval behind storage) contains it. The key it replaces is retired
// with DeleteAt = now + Ret, and its private part is erased from storage; by
// DeleteAt every token it signed has expired, including those signed by
// instances that had not yet reloaded (provided their reloads succeed; Run
// logs every failure). Each window derives from the one setting it protects,
// so they cannot disagree with it. Every instance checks its own windows again
// before promoting or deleting, so the others do not act early on dates
// written by an instance configured with shorter ones; give every instance,
// including one-off command-line runs, the same settings.
//
// Defaults: RotationPeriod 30 days, JWKSMaxAge 1 hour, ReloadInterval 10
// seconds, SafetyMargin 5 minutes, Algorithm RS256. So P is 1h5m10s and Ret
// is TokenLifetime + 5m10s. TokenLifetime has no default.
//
// # Several instances
//
// The key set lives in storage and is written only through
// Store.UpdateKeys, a compare-and-swap. Each lifecycle step generates its key
// outside the updater; the updater re-checks, on the stored set, that the
// step is still due and otherwise aborts with a private "already rotated"
// error that counts as success (the pattern of dex's
// server/signer/rotation.go). Two instances therefore never activate two
// different keys, and two instances starting on an empty store end with one
// key. Every instance's Run reloads the set every ReloadInterval.
//
// # Keys at rest
//
// Private keys are stored as PKCS#8 DER sealed with XChaCha20-Poly1305
// under a key derived from Config.Secret with HKDF-SHA256; the key ID is
// bound as associated data, so ciphertexts cannot be swapped between records.
// A wrong secret makes New fail with ErrWrongSecret instead of loading
// garbage. Public keys are stored as JWK JSON. The key ID is the key's RFC
// 7638 thumbprint. RSA keys have RSABits (2048) bits, ES256 keys use P-256,
// EdDSA keys Ed25519.
//
// # What it does not do
//
// It does not fetch remote key sets, verify tokens, or handle encryption
// keys. Changing Config.Algorithm affects only keys created afterwards.
// Rotate with immediate set skips pre-publication and is meant for a
// compromised key.
package keys
