package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/oauthkit/authserver/storage"
)

// introspection is the RFC 7662 §2.2 response.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	NotBefore int64    `json:"nbf,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	// Cnf is the key a DPoP-bound token is bound to (RFC 9449 §6.2).
	Cnf *confirmation `json:"cnf,omitempty"`
	// encoded is the JSON of an answer that no longer changes (a cached
	// one, or inactive), so that a cache hit is not encoded again.
	encoded []byte
}

// frozen returns r with its JSON encoding kept; r must not change after.
func (r *introspection) frozen() *introspection {
	if b, err := json.Marshal(r); err == nil {
		r.encoded = b
	}
	return r
}

var inactive = (&introspection{}).frozen()

const introspectionJWT = "application/token-introspection+jwt"

// handleIntrospect serves RFC 7662 introspection. Only confidential clients
// with the introspect permission may call it (client_secret_basic,
// client_secret_post, or a bearer access token of such a client).
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, oerr := s.parseForm(w, r)
	if oerr == nil {
		var caller string
		caller, oerr = s.authenticateIntrospector(r, form)
		if oerr == nil {
			token := form.Get("token")
			if token == "" {
				oerr = invalidRequest("The token parameter is missing.")
			} else {
				res, err := s.introspect(r.Context(), token, form.Get("token_type_hint"))
				if err != nil {
					s.metrics.introspections.WithLabelValues("error").Inc()
					oerr = unavailable(err)
				} else {
					if res.Active {
						s.metrics.introspections.WithLabelValues("active").Inc()
					} else {
						s.metrics.introspections.WithLabelValues("inactive").Inc()
					}
					s.writeIntrospection(w, r, caller, res)
					return
				}
			}
		}
	}
	s.logError(r, "introspection failed", oerr)
	writeOAuthError(w, oerr)
}

// authenticateIntrospector returns the calling client's ID.
func (s *Server) authenticateIntrospector(r *http.Request, form map[string][]string) (string, *oauthError) {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(tok)
		c, err := s.strategy.verifyAccessToken(tok)
		if err == nil {
			_, err = s.liveAccessRecord(r.Context(), jwtSignature(tok))
		}
		if err != nil {
			return "", newError(http.StatusUnauthorized, errInvalidToken, "The access token is invalid.").withBearer()
		}
		cl, err := s.store.GetClient(r.Context(), c.ClientID)
		if err != nil || !cl.Introspect || c.Subject != c.ClientID {
			return "", newError(http.StatusForbidden, errInsufficientScope, "The caller may not introspect tokens.").withBearer()
		}
		return cl.ID, nil
	}
	c, oerr := s.authenticateClient(r.Context(), r, form)
	if oerr != nil {
		return "", oerr
	}
	if c.Public || !c.Introspect {
		return "", newError(http.StatusForbidden, errUnauthorizedClient, "The client may not introspect tokens.")
	}
	return c.ID, nil
}

// withBearer marks an error for a Bearer challenge (RFC 6750 §3).
func (e *oauthError) withBearer() *oauthError {
	e.bearer = true
	return e
}

// introspect looks the token up; the hint only orders the lookups.
func (s *Server) introspect(ctx context.Context, token, hint string) (*introspection, error) {
	looksJWT := strings.Count(token, ".") == 2
	order := []storage.TokenKind{storage.RefreshToken, storage.AccessToken}
	if looksJWT || hint == "access_token" {
		order = []storage.TokenKind{storage.AccessToken, storage.RefreshToken}
	}
	for _, kind := range order {
		var res *introspection
		var err error
		if kind == storage.AccessToken {
			if !looksJWT {
				continue
			}
			res, err = s.introspectAccess(ctx, token)
		} else {
			if looksJWT {
				continue
			}
			res, err = s.introspectRefresh(ctx, token)
		}
		if err != nil || res.Active {
			return res, err
		}
	}
	return inactive, nil
}

// introspectAccess answers for a JWT access token: from the cache of verified
// tokens when the token is there, its key still published and the revocation
// set fresh; otherwise by verifying the signature and reading the record.
func (s *Server) introspectAccess(ctx context.Context, token string) (*introspection, error) {
	key, cacheable, e, verdict := lookupVerified(ctx, s, s.introCache, token)
	switch verdict {
	case cacheInvalid:
		return inactive, nil
	case cacheHit:
		return e.res, nil
	}
	c, kid, err := s.strategy.verifyAccessTokenKey(token)
	if err != nil {
		return inactive, nil
	}
	sig := jwtSignature(token)
	_, err = s.liveAccessRecord(ctx, sig)
	if errors.Is(err, storage.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	res := &introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, Username: c.Email,
		TokenType: "Bearer", Expiry: c.Expiry, IssuedAt: c.IssuedAt, NotBefore: c.NotBefore,
		Subject: c.Subject, Audience: c.Audience, Issuer: c.Issuer, JTI: c.ID, Roles: c.Roles,
	}
	if c.Cnf != nil {
		res.Cnf, res.TokenType = c.Cnf, tokenTypeDPoP
	}
	if cacheable {
		// A revocation committed after the record was read is in the
		// revocation set by the time a hit can be answered, so caching
		// after the read is safe.
		s.introCache.put(key, cachedIntrospection{res: res.frozen(), verified: verified{exp: c.Expiry, sig: revocationKeyOf(sig), kid: kid}})
	}
	return res, nil
}

func (s *Server) introspectRefresh(ctx context.Context, token string) (*introspection, error) {
	sig := s.strategy.RefreshTokenSignature(ctx, token)
	if sig == "" {
		return inactive, nil
	}
	t, err := s.store.GetToken(ctx, storage.RefreshToken, sig)
	if errors.Is(err, storage.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	if !t.Active || !t.ExpiresAt.After(now) {
		return inactive, nil
	}
	req, err := decodePayload(t.Payload, nil)
	if err != nil {
		return nil, err
	}
	// The HMAC check proves the presented token, not just its signature part,
	// is ours.
	if err := s.strategy.ValidateRefreshToken(ctx, req, token); err != nil {
		return inactive, nil
	}
	sess := req.Session.(*session)
	res := &introspection{
		Active: true, Scope: strings.Join(req.GrantedScope, " "), ClientID: t.ClientID,
		TokenType: "refresh_token", Expiry: t.ExpiresAt.Unix(), IssuedAt: t.RequestedAt.Unix(),
		Subject: sess.Subject, Audience: req.GrantedAudience, Issuer: s.cfg.Issuer,
	}
	if sess.User {
		res.Username, res.Roles = sess.Username, sess.Roles
	}
	if sess.RefreshJKT != "" {
		// A public client's refresh token is bound to its DPoP key
		// (RFC 9449 §5), as cnf says of a bound access token (§6.2).
		res.Cnf = &confirmation{JKT: sess.RefreshJKT}
	}
	return res, nil
}

// writeIntrospection writes JSON, or a signed JWT when the caller asks for
// one (RFC 9701).
func (s *Server) writeIntrospection(w http.ResponseWriter, r *http.Request, caller string, res *introspection) {
	if !acceptsIntrospectionJWT(r.Header.Get("Accept")) {
		if res.encoded == nil {
			writeJSON(w, http.StatusOK, res)
			return
		}
		w.Header()["Content-Type"] = headerJSON
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.encoded)
		return
	}
	now := s.cfg.Now().UTC()
	claims := struct {
		Issuer   string         `json:"iss"`
		Audience string         `json:"aud"`
		IssuedAt int64          `json:"iat"`
		Expiry   int64          `json:"exp"`
		Token    *introspection `json:"token_introspection"`
	}{s.cfg.Issuer, caller, now.Unix(), now.Add(s.cfg.IntrospectionJWTTTL).Unix(), res}
	jwt, err := s.strategy.sign(r.Context(), claims, "token-introspection+jwt")
	if err != nil {
		e := serverError(err)
		s.logError(r, "signing introspection response failed", e)
		writeOAuthError(w, e)
		return
	}
	w.Header().Set("Content-Type", introspectionJWT)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(jwt))
}

func acceptsIntrospectionJWT(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), introspectionJWT) {
			return true
		}
	}
	return false
}

// liveAccessRecord returns the record of an access token by its JWT
// signature; a record that is gone or inactive is storage.ErrNotFound.
// Every check of an access token against storage goes through it.
func (s *Server) liveAccessRecord(ctx context.Context, sig string) (storage.Token, error) {
	t, err := s.store.GetToken(ctx, storage.AccessToken, sig)
	if err == nil && !t.Active {
		return storage.Token{}, storage.ErrNotFound
	}
	return t, err
}
