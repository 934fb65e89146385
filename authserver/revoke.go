package authserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/oauthkit/authserver/storage"
)

// handleRevoke serves RFC 7009 revocation. Revoking either token of a grant
// revokes the whole grant: every access and refresh token issued from the
// same original authorization.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	oerr := s.revoke(w, r)
	if oerr != nil {
		s.logError(r, "revocation failed", oerr)
		writeOAuthError(w, oerr)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) *oauthError {
	form, oerr := s.parseForm(w, r)
	if oerr != nil {
		return oerr
	}
	st := &requestState{ip: s.clientIP(r)}
	ctx := withState(r.Context(), st)
	client, oerr := s.authenticateClient(ctx, r, form)
	if oerr != nil {
		return oerr
	}
	token := form.Get("token")
	if token == "" {
		return invalidRequest("The token parameter is missing.")
	}
	t, err := s.findToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // RFC 7009 §2.2: an invalid token is not an error.
	}
	if err != nil {
		return unavailable(err)
	}
	if t.ClientID != client.ID {
		return newError(http.StatusBadRequest, errUnauthorizedClient, "The token was not issued to this client.")
	}
	if err := s.revokeGrant(ctx, t.RequestID); err != nil {
		return unavailable(err)
	}
	s.metrics.revocations.Inc()
	s.audit(ctx, "token_revoked", slog.String("client_id", client.ID), slog.String("kind", string(t.Kind)))
	return nil
}

// findToken finds the record of an access token (a JWT) or a refresh token.
func (s *Server) findToken(ctx context.Context, token string) (storage.Token, error) {
	if strings.Count(token, ".") == 2 {
		if sig := jwtSignature(token); sig != "" {
			// An inactive record is revoked already, and no handle on the
			// grant's other tokens.
			return s.liveAccessRecord(ctx, sig)
		}
		return storage.Token{}, storage.ErrNotFound
	}
	sig := s.strategy.RefreshTokenSignature(ctx, token)
	if sig == "" {
		return storage.Token{}, storage.ErrNotFound
	}
	t, err := s.store.GetToken(ctx, storage.RefreshToken, sig)
	if err != nil {
		return t, err
	}
	// The HMAC check proves the whole token, not only its signature part.
	if s.strategy.Enigma.Validate(ctx, strings.TrimPrefix(token, "ory_rt_")) != nil {
		return storage.Token{}, storage.ErrNotFound
	}
	return t, nil
}

// revokeGrant deletes every token of a grant in one transaction (shared with
// concurrent requests by the committer), then brings this instance's
// revocation set up to date.
func (s *Server) revokeGrant(ctx context.Context, requestID string) error {
	del := func(kind storage.TokenKind) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := s.store.DeleteTokens(ctx, kind, requestID)
			return err
		}
	}
	if err := s.committer.submit(ctx, nil, requestID, nil, nil, del(storage.RefreshToken), del(storage.AccessToken)); err != nil {
		return err
	}
	s.syncRevocations(ctx)
	return nil
}

// syncRevocations reads the revocation feed after this instance revoked
// tokens, so that its introspection cache answers inactive at once. On
// failure the feed is read again before the next cached answer.
func (s *Server) syncRevocations(ctx context.Context) {
	if err := s.revoked.sync(ctx); err != nil {
		s.log.Warn("reading the revocation feed failed", "err", err)
	}
}
