// Package authserver is the OAuth 2.0 authorization server: it composes fosite
// with our storage and keys and serves the HTTP endpoints.
//
// Endpoints (see routes.go): the token endpoint (RFC 6749 password, refresh
// and client credentials grants), introspection (RFC 7662, with RFC 9701 JWT
// responses), revocation (RFC 7009), server metadata (RFC 8414), the JWKS
// (RFC 7517) and, for the demo, the seed API protected by the resource package.
//
// Access tokens are JWTs per RFC 9068, signed with the key the keys.Manager
// names active and verified by kid. Refresh tokens are opaque HMAC tokens;
// only their signatures are stored.
//
// fosite is an implementation detail of this package: no other package of the
// module imports it. Where fosite's defaults deviate from the RFCs (see
// shared/notes/fosite-v0.49.md §4) this package validates the request before
// fosite sees it and writes every response itself.
package authserver
