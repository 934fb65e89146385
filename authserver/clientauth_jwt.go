package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/oauthkit/authserver/storage"
)

// Client authentication methods (RFC 7591 §2, OpenID Connect Core §9).
const (
	AuthMethodSecretBasic = "client_secret_basic"
	AuthMethodSecretPost  = "client_secret_post"
	AuthMethodSecretJWT   = "client_secret_jwt"
	AuthMethodPrivateKey  = "private_key_jwt"
	AuthMethodNone        = "none"
)

// clientAssertionType is the client_assertion_type of RFC 7523 §2.2.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Limits of a client assertion (RFC 7523 §3).
const (
	// maxAssertionAhead is how far in the future an assertion's exp may
	// be: a client assertion is for one request, so it lives minutes.
	maxAssertionAhead = 5 * time.Minute
	// assertionLeeway is the clock skew tolerated on exp, nbf and iat
	// (and on top of maxAssertionAhead).
	assertionLeeway = 30 * time.Second
	// maxAssertionBytes bounds the client_assertion parameter.
	maxAssertionBytes = 8 << 10
	// maxJTIBytes bounds the jti claim.
	maxJTIBytes = 256
	// jtiPrefix is the purpose prefix of the replay records.
	jtiPrefix = "client_assertion:"
)

// PrivateKeyJWTAlgs are the algorithms a private_key_jwt assertion may be
// signed with: asymmetric only, never "none" or an HMAC (an HMAC keyed with
// the client's public key would be key confusion).
var PrivateKeyJWTAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ClientSecretJWTAlgs are the algorithms of a client_secret_jwt assertion.
var ClientSecretJWTAlgs = []string{"HS256", "HS384", "HS512"}

func joseAlgs(algs []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}

// assertionAlgNames are the assertion algorithms of the metadata.
var assertionAlgNames = append(slices.Clone(PrivateKeyJWTAlgs), ClientSecretJWTAlgs...)

var (
	assertionAlgs  = joseAlgs(append(slices.Clone(PrivateKeyJWTAlgs), ClientSecretJWTAlgs...))
	privateKeyAlgs = joseAlgs(PrivateKeyJWTAlgs)
	secretJWTAlgs  = joseAlgs(ClientSecretJWTAlgs)
)

// authMethodsSupported are the client authentication methods of the
// metadata (RFC 8414 §2) at the token, introspection and revocation
// endpoints.
var authMethodsSupported = []string{AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodSecretJWT, AuthMethodPrivateKey, AuthMethodNone}

// AuthMethodOf returns the client's token_endpoint_auth_method, with the
// defaults of RFC 7591 §2 (none for a public client, client_secret_basic
// otherwise).
func AuthMethodOf(c storage.Client) string {
	switch {
	case c.TokenEndpointAuthMethod != "":
		return c.TokenEndpointAuthMethod
	case c.Public:
		return AuthMethodNone
	default:
		return AuthMethodSecretBasic
	}
}

// usesAssertion reports whether the client authenticates with a JWT.
func usesAssertion(c storage.Client) bool {
	m := AuthMethodOf(c)
	return m == AuthMethodPrivateKey || m == AuthMethodSecretJWT
}

// hasAssertion reports whether the request carries a client assertion.
func hasAssertion(form url.Values) bool {
	_, a := form["client_assertion"]
	_, t := form["client_assertion_type"]
	return a || t
}

// assertionError is invalid_client with a description that says what was
// wrong with the assertion (never its content).
func assertionError(desc string) *oauthError {
	e := invalidClient()
	e.Description = desc
	return e
}

// authenticateAssertion authenticates a client by a JWT assertion (RFC 7523
// §2.2 and §3): private_key_jwt or client_secret_jwt, whichever the client
// registered. The signature is verified once, with the key the header's
// kid names; the jti is then recorded in storage, shared by every instance,
// so that an assertion is accepted once (useOnce: in a group commit).
func (s *Server) authenticateAssertion(ctx context.Context, r *http.Request, form url.Values) (storage.Client, *oauthError) {
	if r.Header.Get("Authorization") != "" {
		return storage.Client{}, invalidRequest("The client used more than one authentication method.")
	}
	if _, ok := form["client_secret"]; ok {
		return storage.Client{}, invalidRequest("The client used more than one authentication method.")
	}
	if form.Get("client_assertion_type") != clientAssertionType {
		return storage.Client{}, invalidRequest("client_assertion_type must be " + clientAssertionType + ".")
	}
	raw := form.Get("client_assertion")
	if raw == "" {
		return storage.Client{}, invalidRequest("client_assertion is required with client_assertion_type.")
	}
	if len(raw) > maxAssertionBytes {
		return storage.Client{}, assertionError("The client assertion is too large.")
	}
	jws, err := jose.ParseSignedCompact(raw, assertionAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return storage.Client{}, assertionError("The client assertion is not a JWT signed with a supported algorithm.")
	}
	var claims jwt.Claims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return storage.Client{}, assertionError("The client assertion's claims are malformed.")
	}
	id := claims.Issuer
	if id == "" || claims.Subject != id {
		return storage.Client{}, assertionError("The client assertion's iss and sub must both be the client_id.")
	}
	if fid, ok := form["client_id"]; ok && fid[0] != id {
		return storage.Client{}, invalidRequest("The client_id parameter does not match the client assertion.")
	}
	ip := s.clientIP(r)
	if s.throttle != nil {
		if wait := max(s.throttle.isBlocked("client:"+id), s.throttle.isBlocked("ip:"+ip)); wait > 0 {
			return storage.Client{}, s.clientAuthThrottled(ctx, id, wait)
		}
	}
	fail := func(desc string) (storage.Client, *oauthError) {
		s.clientAuthFailed(ctx, id, ip)
		return storage.Client{}, assertionError(desc)
	}
	// The registration is cached (a client's keys and sealed secret change
	// only with it, which the client change feed tracks) and proves nothing
	// by itself: the assertion is verified with its keys below.
	c, err := s.clientRegistration(ctx, id)
	if storage.Absent(err) {
		return fail(genericInvalidClientDetail)
	}
	if err != nil {
		return storage.Client{}, unavailable(err)
	}
	hdr := jws.Signatures[0].Header
	alg := hdr.Algorithm
	var key any
	switch AuthMethodOf(c) {
	case AuthMethodPrivateKey:
		if !slices.Contains(privateKeyAlgs, jose.SignatureAlgorithm(alg)) {
			return fail("The client must sign its assertion with its private key (" + strings.Join(PrivateKeyJWTAlgs, ", ") + ").")
		}
		k, oerr := s.clientKeys.key(ctx, c, hdr.KeyID, alg)
		if oerr != nil {
			if oerr.Code == errInvalidClient {
				s.clientAuthFailed(ctx, id, ip)
			}
			return storage.Client{}, oerr
		}
		key = k
	case AuthMethodSecretJWT:
		if !slices.Contains(secretJWTAlgs, jose.SignatureAlgorithm(alg)) {
			return fail("A client_secret_jwt assertion is signed with HS256, HS384 or HS512.")
		}
		if secretExpired(c, s.cfg.Now()) {
			s.audit(ctx, "client_secret_expired", slog.String("client_id", c.ID))
			return storage.Client{}, assertionError("The client secret has expired.")
		}
		secret, err := s.secretBox.Open(c.ID, c.SecretCiphertext)
		if err != nil {
			// A registration without a sealed secret, or one sealed with
			// another server secret: the operator's problem, logged; the
			// client is told only that it cannot authenticate.
			s.log.ErrorContext(ctx, "client_secret_jwt: the client's stored secret does not open", "client_id", c.ID, "err", err)
			return storage.Client{}, assertionError("The client has no usable secret for client_secret_jwt.")
		}
		key = secret
	default:
		return fail("The client is not registered for JWT client authentication.")
	}
	// The claims are checked before the signature so that stale or
	// misdirected assertions cost no verification; nothing is trusted
	// until Verify succeeds.
	now := s.cfg.Now()
	endpoint := s.cfg.Issuer + strings.TrimPrefix(r.URL.Path, s.basePath)
	if oerr := s.checkAssertionClaims(endpoint, claims, now); oerr != nil {
		return fail(oerr.Description)
	}
	// The jti record will go to the group committer: announced now, a
	// commit that starts meanwhile waits (briefly) for it.
	arrived := s.committer.expect()
	defer arrived()
	s.assertionVerifications.Add(1)
	if _, err := jws.Verify(key); err != nil {
		arrived()
		return fail("The client assertion's signature is invalid.")
	}
	// RFC 7523 §3 item 7: the jti is single-use; the record lives as long
	// as the assertion could be accepted.
	if err := s.useJTI(ctx, arrived, jtiPrefix+c.ID+":", claims.ID, claims.Expiry.Time().Add(assertionLeeway), c.ID, ""); errors.Is(err, errReplayed) {
		s.audit(ctx, "client_assertion_replayed", slog.String("client_id", c.ID))
		return fail("The client assertion was already used.")
	} else if err != nil {
		return storage.Client{}, unavailable(err)
	}
	return c, nil
}

// errReplayed is useOnce's answer for a record that was already stored.
var errReplayed = fmt.Errorf("authserver: single-use value already used: %w", storage.ErrNotFound)

// useOnce stores a single-use record (a jti's), or returns errReplayed if it
// is already stored, here or by another instance. The insert goes through
// the group committer, in the transaction of concurrent requests' writes
// (one fsync for all of them on SQLite), and useOnce returns once that
// transaction has committed: every endpoint answers only after the record
// is durable. arrived is the caller's withdrawal from committer.expect, or
// nil. A replay stores nothing and fails alone (the guard's
// storage.ErrNotFound), without failing or delaying the rest of its batch.
//
// The record's RequestID should be its Signature: on PostgreSQL the insert
// takes the lock of its RequestID exclusively until the batch commits, and
// one shared value would serialise every instance's batches.
func (s *Server) useOnce(ctx context.Context, arrived func(), rec storage.Token) error {
	return s.committer.submit(ctx, arrived, rec.RequestID, nil, func(tx context.Context) error {
		created, err := s.store.CreateTokenIfAbsent(tx, rec)
		if err == nil && !created {
			err = errReplayed
		}
		return err
	})
}

// useJTI records through useOnce that the single-use value id (a jti),
// within scope (a purpose prefix and its owner), was used; the record lives
// until exp, as long as the value could be accepted. Its key is scope and
// the SHA-256 of id, so stored keys have a bounded size.
func (s *Server) useJTI(ctx context.Context, arrived func(), scope, id string, exp time.Time, clientID, subject string) error {
	sum := sha256.Sum256([]byte(id))
	sig := scope + base64.RawURLEncoding.EncodeToString(sum[:])
	return s.useOnce(ctx, arrived, storage.Token{Kind: storage.UsedJTI, Signature: sig, RequestID: sig,
		ClientID: clientID, Subject: subject, Active: true, RequestedAt: s.cfg.Now().UTC(), ExpiresAt: exp.UTC()})
}

// checkAssertionClaims applies RFC 7523 §3 to a verified assertion: aud is
// the issuer or the URL of the endpoint called (a string or an array);
// exp is required, not passed, and at most maxAssertionAhead away; nbf and
// iat are not in the future; jti is present.
func (s *Server) checkAssertionClaims(endpoint string, c jwt.Claims, now time.Time) *oauthError {
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return a == s.cfg.Issuer || a == endpoint }) {
		return assertionError("The client assertion's aud must be the issuer or the endpoint URL.")
	}
	if c.Expiry == nil {
		return assertionError("The client assertion has no exp.")
	}
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(assertionLeeway)) {
		return assertionError("The client assertion has expired.")
	}
	if exp.After(now.Add(maxAssertionAhead + assertionLeeway)) {
		return assertionError("The client assertion's exp is more than 5 minutes ahead.")
	}
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(assertionLeeway)) {
		return assertionError("The client assertion is not valid yet (nbf).")
	}
	if c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(assertionLeeway)) {
		return assertionError("The client assertion was issued in the future (iat).")
	}
	if c.ID == "" || len(c.ID) > maxJTIBytes {
		return assertionError("The client assertion needs a jti of at most 256 bytes.")
	}
	return nil
}
