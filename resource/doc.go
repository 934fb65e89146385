// Package resource protects an HTTP API with the access tokens our
// authorization server issues. A service author imports it to answer one
// question per request: who is calling, and may they do this?
//
// It depends only on the standard library, go-jose v4 and
// golang.org/x/sync, so an API that is not part of this repository can use
// it without pulling in the authorization server or fosite.
//
// # What it does
//
// New builds an Authenticator from a Config that names the issuer and this
// API's audience:
//
//	auth, err := resource.New(ctx, resource.Config{
//		Issuer:   "https://auth.example.com",
//		Audience: "https://auth.example.com/api",
//	})
//	mux.Handle("GET /api/items", auth.Middleware(items))
//	mux.Handle("DELETE /api/items/{id}", auth.RequireAllScopes("items:write")(deleteItem))
//
// Middleware reads the token from the Authorization header (RFC 6750 §2.1;
// the scheme is case-insensitive), verifies it, and passes the request on
// with its Claims in the context, where FromContext finds them.
// RequireAnyScope, RequireAllScopes, RequireAnyRole and RequireAllRoles check
// what the token grants; each works after Middleware or on its own. A guard
// trusts only claims its own Authenticator verified: after another
// Authenticator's Middleware (another audience) it verifies the token
// itself. All are func(http.Handler) http.Handler, so they suit net/http and
// gorilla/mux (router.Use) alike.
//
// Refusals follow RFC 6750 §3: 401 invalid_token for a bad token, 401 with a
// bare "Bearer" challenge for a missing one (§3.1), 400 invalid_request for
// a malformed request (two credentials, bad syntax), 403 insufficient_scope
// for a failed scope or role check, with a JSON body
// {"error":…,"error_description":…}. A request made with the DPoP scheme
// (RFC 9449) gets the same errors in a DPoP challenge (§7.1). Config.ErrorHandler renders them
// differently. Verify errors wrap sentinels (ErrTokenExpired,
// ErrTokenInactive, …) so callers can tell an expired token from a forged
// one. Neither tokens nor secrets are ever logged.
//
// # The three modes
//
// ModeLocal (the default) verifies RFC 9068 JWT access tokens against the
// issuer's JWKS: the "at+jwt" type, a signature by the key its kid names
// with an algorithm from an allow-list that fits that key, iss exactly,
// aud containing Config.Audience, and exp, nbf and iat with a 5-second
// leeway. It costs no network call in steady state. A revoked token stays
// valid until it expires, so keep access tokens short-lived.
//
// ModeIntrospect asks the issuer's RFC 7662 introspection endpoint about
// every token, with the API's own client credentials. Use it for opaque
// tokens, or when a revocation must take effect at once. Each request costs
// a round trip unless Introspection.CacheTTL caches answers (never past the
// token's exp), and the API fails closed (503) while the issuer is down.
//
// ModeLocalThenIntrospect verifies the JWT locally and then introspects it:
// forged and expired tokens are refused without a call, and revoked ones are
// refused within CacheTTL.
//
// A service that can look revocation up itself, such as the authorization
// server mounting its own API in-process, uses ModeLocal with WithTokenCheck
// instead.
//
// # Keys
//
// A RemoteKeySet caches the parsed JWKS. It refetches lazily when the
// Cache-Control max-age (bounded to between one minute and one day) has
// passed, answering from the cache meanwhile, and when a token names an
// unknown kid, at most once per 30-second cooldown. One fetch runs at a
// time, each is bounded in time and size, and the last good key set is kept
// while the issuer is down. An issuer should therefore publish a new key at
// least a cooldown, better a max-age, before signing with it. Config.KeySet
// takes any other KeySet, such as a StaticKeySet.
//
// # What it does not do
//
// It does not obtain or refresh tokens (that is the client's job), does not
// read tokens from the URI query (RFC 6750 §2.3), reads them from a form
// body only with Config.AllowFormToken, and does not accept encrypted (JWE)
// or symmetrically signed (HS256) tokens. It never follows jku, x5u, x5c or
// an embedded jwk: keys come from the configured key set only. It checks
// DPoP sender constraints (Config.DPoP), not mTLS ones (RFC 8705).
//
// MetadataHandler serves the API's RFC 9728 protected resource metadata,
// and Config.ResourceMetadataURL points challenges to it.
package resource
