package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/storage"
)

// The JWT bearer authorization grant (RFC 7523 §2.1). fosite's
// handler/rfc7523 wants its own storage contract with go-jose v3 keys and
// checks aud against the token URL only; jwtBearerHandler is a
// fosite.TokenEndpointHandler like the token exchange, so that client
// authentication, token minting and the token record are those of every
// grant.
//
// The issuer of the assertion must be registered (authserver issuers add),
// sign with one of its keys (asymmetric algorithms only), name a subject it
// may assert, and that subject must be one of our users (by ID or email):
// the token is that user's, with their roles. The assertion obeys the rules
// of client assertions (aud, exp at most 5 minutes ahead, single-use jti).
// The client must authenticate and be registered for the grant; no refresh
// token is issued.

const grantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// bearerJTIPrefix is the purpose prefix of the grant's replay records.
const bearerJTIPrefix = "jwt_bearer:"

// jwtBearerHandler handles the JWT bearer authorization grant.
type jwtBearerHandler struct{ grantHandler }

var _ fosite.TokenEndpointHandler = jwtBearerHandler{}

// invalidGrant is the error of a refused assertion (RFC 7523 §3.1).
func invalidGrant(desc string) *oauthError {
	return newError(http.StatusBadRequest, errInvalidGrant, desc)
}

// HandleTokenEndpointRequest validates the assertion (RFC 7523 §3) and fills
// the session with the user it names.
func (h jwtBearerHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	s := h.s
	c, err := h.grantClient(ctx, false)
	if err != nil {
		return err
	}
	raw := ar.GetRequestForm().Get("assertion")
	if raw == "" {
		return invalidRequest("The assertion parameter is missing.")
	}
	if len(raw) > maxAssertionBytes {
		return invalidGrant("The assertion is too large.")
	}
	jws, err := jose.ParseSignedCompact(raw, privateKeyAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return invalidGrant("The assertion is not a JWT signed with a supported algorithm.")
	}
	var claims jwt.Claims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return invalidGrant("The assertion's claims are malformed.")
	}
	iss, err := s.store.GetIssuer(ctx, claims.Issuer)
	if storage.Absent(err) || claims.Issuer == "" {
		return invalidGrant("The assertion's issuer is not trusted.")
	}
	if err != nil {
		return unavailable(err)
	}
	if claims.Subject == "" || (!iss.AnySubject && !slices.Contains(iss.Subjects, claims.Subject)) {
		return invalidGrant("The issuer may not assert this subject.")
	}
	now := s.cfg.Now()
	if oe := s.checkAssertionClaims(s.cfg.Issuer+"/token", claims, now); oe != nil {
		return invalidGrant(oe.Description)
	}
	hdr := jws.Signatures[0].Header
	key, oe := s.clientKeys.keyOf(ctx, "issuer:"+iss.ID, iss.JWKS, iss.JWKSURI, hdr.KeyID, hdr.Algorithm)
	if oe != nil {
		if oe.Code == errInvalidClient {
			return invalidGrant(oe.Description)
		}
		return oe
	}
	s.assertionVerifications.Add(1)
	if _, err := jws.Verify(key); err != nil {
		return invalidGrant("The assertion's signature is invalid.")
	}
	u, err := s.store.GetUser(ctx, claims.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		u, err = s.store.GetUserByEmail(ctx, claims.Subject)
	}
	if storage.Absent(err) || (err == nil && u.Disabled) {
		return invalidGrant("The assertion's subject is not a user of this server.")
	}
	if err != nil {
		return unavailable(err)
	}
	allowed := slices.DeleteFunc(slices.Clone(iss.Scopes), func(sc string) bool { return !slices.Contains(c.Scopes, sc) })
	requested := ar.GetRequestedScopes()
	for _, sc := range requested {
		if !slices.Contains(allowed, sc) {
			return newError(http.StatusBadRequest, errInvalidScope, "The requested scope exceeds what the issuer and the client are allowed.")
		}
	}
	// The jti is recorded last, once nothing else can refuse the request.
	if err := s.useJTI(ctx, nil, bearerJTIPrefix+iss.ID+":", claims.ID, claims.Expiry.Time().Add(assertionLeeway), c.ID, u.ID); errors.Is(err, errReplayed) {
		s.audit(ctx, "jwt_bearer_replayed", slog.String("client_id", c.ID), slog.String("issuer", safeParam(iss.ID)))
		return invalidGrant("The assertion was already used.")
	} else if err != nil {
		return unavailable(err)
	}
	sess, err := requestSession(ar)
	if err != nil {
		return err
	}
	fillUserSession(sess, u)
	grantScopes(ar, requested, allowed)
	s.audit(ctx, "jwt_bearer_granted", slog.String("client_id", c.ID), slog.String("issuer", safeParam(iss.ID)), slog.String("sub", u.ID))
	return nil
}
