package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// The UserInfo endpoint (OpenID Connect Core §5.3). The access token comes
// in the Authorization header (GET or POST) or, for POST, in the
// form-encoded body (RFC 6750 §2.2), never both. The token's aud must
// include Config.Audience, the default audience (RFC 9068 §4): a token
// whose resource parameter named only other APIs is refused. Claims follow
// the granted scopes (profile, email) and the userinfo member of the claims
// parameter, as decided at authorization. Errors are RFC 6750 §3
// challenges.

// userinfoResponse is the UserInfo body: sub and the released claims.
type userinfoResponse struct {
	Subject string `json:"sub"`
	userClaims
}

// bearerError is an RFC 6750 §3.1 error answer. An empty code is a request
// without a token: a challenge without error (§3.1).
func bearerError(w http.ResponseWriter, status int, code, desc string) {
	ch := `Bearer realm="` + realm + `"`
	if code != "" {
		ch += `, error="` + code + `"`
		if desc != "" {
			ch += `, error_description="` + descriptionChars(desc) + `"`
		}
		if code == errInsufficientScope {
			ch += `, scope="openid"`
		}
	}
	w.Header().Set("WWW-Authenticate", ch)
	if code == "" {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// handleUserinfo serves GET and POST /userinfo.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	token, dpopScheme, ok := s.userinfoToken(w, r) // dpop.go
	if !ok {
		return
	}
	// Refusals answer with the scheme the request used (RFC 9449 §7.1).
	refuse := bearerError
	if dpopScheme {
		refuse = dpopChallengeError
	}
	ctx := r.Context()
	grant, oe := s.userinfoGrant(ctx, token)
	if oe != nil && oe.Status >= 500 {
		writeOAuthError(w, oe)
		return
	}
	if oe != nil {
		refuse(w, oe.Status, oe.Code, oe.Description)
		return
	}
	if !s.userinfoBinding(w, r, token, grant.cnf, dpopScheme) {
		return
	}
	u, err := s.userinfoUser(ctx, grant.userID)
	if errors.Is(err, storage.ErrNotFound) {
		refuse(w, http.StatusUnauthorized, errInvalidToken, "The access token's user no longer exists.")
		return
	}
	if err != nil {
		writeOAuthError(w, unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, userinfoResponse{Subject: grant.subject, userClaims: releaseClaims(grant.claims, u.name, u.email, u.updated)})
}

// cachedUserinfo is what UserInfo needs of a verified, live access token
// with the openid scope.
type cachedUserinfo struct {
	subject string        // the token's sub (pairwise for pairwise clients)
	userID  string        // the stored user's ID
	claims  []string      // the claim names the scopes and claims request release
	cnf     *confirmation // the DPoP key binding, if any
	verified
}

// cachedUser is a user's released fields, read at a known time.
type cachedUser struct {
	name, email string
	updated     time.Time
	read        time.Time
}

// userinfoGrant verifies the access token once per instance: later calls
// with the same token are answered from the cache of verified tokens (the
// same rules as introspection: the key still published, not expired, and
// not revoked per a revocation set at most RevocationMaxDelay old). It
// returns an RFC 6750 error for a bad token, and a 5xx error (logged) when
// storage failed or the record does not decode.
func (s *Server) userinfoGrant(ctx context.Context, token string) (*cachedUserinfo, *oauthError) {
	key, cacheable, e, verdict := lookupVerified(ctx, s, s.userinfoCache, token)
	switch verdict {
	case cacheInvalid:
		return nil, bearerErr(http.StatusUnauthorized, errInvalidToken, "The access token is invalid, expired or revoked.")
	case cacheHit:
		return &e, nil
	}
	c, kid, err := s.strategy.verifyAccessTokenKey(token)
	if err != nil {
		return nil, bearerErr(http.StatusUnauthorized, errInvalidToken, "The access token is invalid or expired.")
	}
	if !slices.Contains(c.Audience, s.cfg.Audience) {
		// RFC 9068 §4, RFC 9700 §2.3: a token meant for another resource
		// server is not ours to honour (that server could replay it here).
		// Refused before the cache: a hit is a token that passed.
		return nil, bearerErr(http.StatusUnauthorized, errInvalidToken, "The access token is not meant for this server (aud).")
	}
	sig := jwtSignature(token)
	rec, err := s.liveAccessRecord(ctx, sig)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, bearerErr(http.StatusUnauthorized, errInvalidToken, "The access token is invalid, expired or revoked.")
	}
	if err != nil {
		s.log.ErrorContext(ctx, "userinfo: reading the access token record", "err", err)
		return nil, unavailable(err)
	}
	scopes := strings.Fields(c.Scope)
	if !slices.Contains(scopes, scopeOpenID) {
		return nil, bearerErr(http.StatusForbidden, errInsufficientScope, "The access token was not granted the openid scope.")
	}
	// Only the claims request of the stored session is needed.
	var stored struct {
		Session struct {
			Subject string     `json:"sub"` // the user ID, also for pairwise clients
			User    bool       `json:"user"`
			OIDC    *oidcFacts `json:"oidc"`
		} `json:"session"`
	}
	if err := json.Unmarshal(rec.Payload, &stored); err != nil {
		s.log.ErrorContext(ctx, "userinfo: decoding the access token record", "err", err)
		return nil, serverError(err)
	}
	if !stored.Session.User {
		// A client's own token (client_credentials): its subject is a
		// client ID, which must never be read as a user's.
		return nil, bearerErr(http.StatusUnauthorized, errInvalidToken, "The access token was not issued for a user.")
	}
	e = cachedUserinfo{subject: c.Subject, cnf: c.Cnf, userID: stored.Session.Subject, verified: verified{exp: c.Expiry, sig: revocationKeyOf(sig), kid: kid}}
	for _, sc := range scopes {
		e.claims = append(e.claims, scopeClaims[sc]...)
	}
	if f := stored.Session.OIDC; f != nil {
		e.claims = append(e.claims, f.Claims.UserInfo...)
	}
	if cacheable {
		// As for introspection: a revocation committed after the record
		// was read is in the revocation set before a hit is answered.
		s.userinfoCache.put(key, e)
	}
	return &e, nil
}

// userinfoUser returns the released fields of a user that exists and is
// not disabled, from a per-instance copy at most RevocationMaxDelay old (a
// disabled user's tokens are revoked, which the revocation set reports
// within the same delay). ErrNotFound means no such enabled user.
func (s *Server) userinfoUser(ctx context.Context, id string) (cachedUser, error) {
	now := time.Now() // freshness is real time, like the revocation set's (not Config.Now)
	if s.userCache != nil {
		if u, ok := s.userCache.get(userCacheKey(id)); ok && now.Sub(u.read) < s.revoked.maxDelay {
			return u, nil
		}
	}
	u, err := s.store.GetUser(ctx, id)
	if err == nil && u.Disabled {
		err = storage.ErrNotFound
	}
	if err != nil {
		return cachedUser{}, err
	}
	cu := cachedUser{name: u.Name, email: u.Email, updated: u.UpdatedAt, read: now}
	if s.userCache != nil {
		s.userCache.put(userCacheKey(id), cu)
	}
	return cu, nil
}

func userCacheKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

func bearerErr(status int, code, desc string) *oauthError {
	return &oauthError{Status: status, Code: code, Description: desc}
}

// bearerToken reads the access token from the Authorization header or a
// POSTed form body (RFC 6750 §2.1, §2.2). It answers the request itself
// and returns false when there is none or more than one.
func (s *Server) bearerToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	var found []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		switch {
		case !strings.EqualFold(scheme, "Bearer"):
			// Another scheme is no authentication this endpoint knows:
			// a bare challenge (RFC 6750 §3.1).
			bearerError(w, http.StatusUnauthorized, "", "")
			return "", false
		case strings.TrimSpace(tok) == "":
			bearerError(w, http.StatusBadRequest, errInvalidRequest, "The Authorization header must be 'Bearer <token>'.")
			return "", false
		}
		found = append(found, strings.TrimSpace(tok))
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					bearerError(w, http.StatusRequestEntityTooLarge, errInvalidRequest, "The request body is too large.")
					return "", false
				}
				bearerError(w, http.StatusBadRequest, errInvalidRequest, "The request body could not be read.")
				return "", false
			}
			found = append(found, r.PostForm["access_token"]...)
		}
	}
	switch len(found) {
	case 0:
		bearerError(w, http.StatusUnauthorized, "", "")
		return "", false
	case 1:
		return found[0], true
	}
	bearerError(w, http.StatusBadRequest, errInvalidRequest, "Send the access token in exactly one way (RFC 6750 §2).")
	return "", false
}
