package authserver

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/oauthkit/authserver/storage"
)

// The UserInfo endpoint (OpenID Connect Core §5.3). The access token comes
// in the Authorization header (GET or POST) or, for POST, in the
// form-encoded body (RFC 6750 §2.2), never both. Claims follow the granted
// scopes (profile, email) and the userinfo member of the claims parameter.
// Errors are RFC 6750 §3 challenges.

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
	ctx := r.Context()
	c, err := s.strategy.verifyAccessToken(token)
	if err != nil {
		bearerError(w, http.StatusUnauthorized, errInvalidToken, "The access token is invalid or expired.")
		return
	}
	if !s.userinfoBinding(w, r, token, c.Cnf, dpopScheme) {
		return
	}
	rec, err := s.liveAccessRecord(ctx, jwtSignature(token))
	if errors.Is(err, storage.ErrNotFound) {
		bearerError(w, http.StatusUnauthorized, errInvalidToken, "The access token is invalid, expired or revoked.")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "userinfo: reading the access token record", "err", err)
		writeOAuthError(w, unavailable(err))
		return
	}
	scopes := strings.Fields(c.Scope)
	if !slices.Contains(scopes, scopeOpenID) {
		bearerError(w, http.StatusForbidden, errInsufficientScope, "The access token was not granted the openid scope.")
		return
	}
	// Only the claims request of the stored session is needed.
	var stored struct {
		Session struct {
			Subject string     `json:"sub"` // the user ID, also for pairwise clients
			OIDC    *oidcFacts `json:"oidc"`
		} `json:"session"`
	}
	if err := json.Unmarshal(rec.Payload, &stored); err != nil {
		s.log.ErrorContext(ctx, "userinfo: decoding the access token record", "err", err)
		writeOAuthError(w, serverError(err))
		return
	}
	u, err := s.store.GetUser(ctx, stored.Session.Subject)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		bearerError(w, http.StatusUnauthorized, errInvalidToken, "The access token's user no longer exists.")
		return
	}
	if err != nil {
		writeOAuthError(w, unavailable(err))
		return
	}
	var names []string
	for _, sc := range scopes {
		names = append(names, scopeClaims[sc]...)
	}
	if f := stored.Session.OIDC; f != nil {
		names = append(names, f.Claims.UserInfo...)
	}
	writeJSON(w, http.StatusOK, userinfoResponse{Subject: c.Subject, userClaims: releaseClaims(names, u.Name, u.Email, u.UpdatedAt)})
}

// bearerToken reads the access token from the Authorization header or a
// POSTed form body (RFC 6750 §2.1, §2.2). It answers the request itself
// and returns false when there is none or more than one.
func (s *Server) bearerToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	var found []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			bearerError(w, http.StatusUnauthorized, errInvalidRequest, "The Authorization header must be 'Bearer <token>'.")
			return "", false
		}
		found = append(found, strings.TrimSpace(tok))
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
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
