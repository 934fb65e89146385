package authserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/oauthkit/authserver/storage"
)

// fositeStore implements fosite's storage interfaces on top of storage.Store.
// It is the only place where the two error vocabularies meet.
type fositeStore struct {
	store storage.Store
	srv   *Server
}

var (
	_ fosite.Storage                                      = (*fositeStore)(nil)
	_ oauth2.AccessTokenStorage                           = (*fositeStore)(nil)
	_ oauth2.RefreshTokenStorage                          = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage                       = (*fositeStore)(nil)
	_ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = (*fositeStore)(nil)
	_ fositestorage.Transactional                         = (*fositeStore)(nil)
)

// toFositeErr maps storage sentinels to fosite's.
func toFositeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	case errors.Is(err, storage.ErrConflict):
		return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
	default:
		return err
	}
}

// GetClient implements fosite.ClientManager. Our client authentication
// strategy loads clients itself; this is only reached through fosite paths
// that look a client up by ID, such as the authorization request, whose
// client the request's state already holds (read by validateAuthorize).
func (f *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if st := stateFrom(ctx); st != nil && st.client != nil && st.client.ID == id {
		return f.srv.fositeClient(*st.client), nil
	}
	c, err := f.store.GetClient(ctx, id)
	if err != nil {
		return nil, toFositeErr(err)
	}
	return f.srv.fositeClient(c), nil
}

// ClientAssertionJWTValid implements fosite.ClientManager; private_key_jwt is
// not offered, so no assertion is ever known.
func (f *fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT implements fosite.ClientManager (see above).
func (f *fositeStore) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

func (f *fositeStore) createToken(ctx context.Context, kind storage.TokenKind, sig string, r fosite.Requester) error {
	b, s, err := encodePayload(r)
	if err != nil {
		return err
	}
	tt, err := expiryOf(kind)
	if err != nil {
		return err
	}
	exp := s.GetExpiresAt(tt)
	if exp.IsZero() {
		return fmt.Errorf("authserver: %s without expiry", kind)
	}
	sub := ""
	if s.User {
		sub = s.Subject
	}
	t := storage.Token{
		Kind:        kind,
		Signature:   sig,
		RequestID:   r.GetID(),
		ClientID:    r.GetClient().GetID(),
		Subject:     sub,
		Active:      true,
		RequestedAt: r.GetRequestedAt().UTC(),
		ExpiresAt:   exp.UTC(),
		Payload:     b,
	}
	if kind == storage.AccessToken {
		t.StatusList, t.StatusIndex = s.StatusList, s.StatusIndex
	}
	if st := stateFrom(ctx); st != nil && st.buffer {
		st.writes = append(st.writes, func(ctx context.Context) error { return f.store.CreateToken(ctx, t) })
		if st.grant == "" { // a guard's lock (a device code's) comes first
			st.grant = t.RequestID
		}
		return nil
	}
	return toFositeErr(f.store.CreateToken(ctx, t))
}

func (f *fositeStore) getToken(ctx context.Context, kind storage.TokenKind, sig string, s fosite.Session) (fosite.Requester, error) {
	t, err := f.store.GetToken(ctx, kind, sig)
	if err != nil {
		return nil, toFositeErr(err)
	}
	r, err := decodePayload(t.Payload, s)
	if err != nil {
		return nil, err
	}
	if !t.Active {
		if kind == storage.RefreshToken && f.srv.inGrace(t) {
			if st := stateFrom(ctx); st != nil {
				st.graceHit = true
				return nil, errGraceReplay
			}
		}
		// fosite needs the request with ErrInactiveToken to detect reuse.
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (f *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return f.createToken(ctx, storage.AccessToken, sig, r)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (f *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	return f.getToken(ctx, storage.AccessToken, sig, s)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (f *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return toFositeErr(f.store.DeleteToken(ctx, storage.AccessToken, sig))
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (f *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	return f.createToken(ctx, storage.RefreshToken, sig, r)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (f *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	return f.getToken(ctx, storage.RefreshToken, sig, s)
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (f *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return toFositeErr(f.store.DeleteToken(ctx, storage.RefreshToken, sig))
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage. Consuming the
// presented refresh token is a compare-and-swap: of several concurrent
// refreshes with one token exactly one gets past this point. The grant's
// other refresh tokens are deactivated (kept for reuse detection until they
// expire) and its access tokens are revoked.
func (f *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	st := stateFrom(ctx)
	rotate := func(ctx context.Context) error { return f.store.DeactivateToken(ctx, storage.RefreshToken, sig) }
	if f.srv.cfg.RefreshGrace > 0 && st != nil && st.newAccess != "" && st.newRefresh != "" {
		succ, err := f.srv.sealSuccessor(sig, successor{AccessToken: st.newAccess, RefreshToken: st.newRefresh,
			Scope: st.scope, AccessExpiry: st.accessExpiry})
		if err != nil {
			return err
		}
		at := f.srv.cfg.Now().UTC()
		rotate = func(ctx context.Context) error {
			return f.store.RotateToken(ctx, storage.RefreshToken, sig, at, succ)
		}
	}
	rest := []func(context.Context) error{
		func(ctx context.Context) error {
			_, err := f.store.DeactivateTokens(ctx, storage.RefreshToken, requestID)
			return err
		},
		func(ctx context.Context) error {
			_, err := f.store.DeleteTokens(ctx, storage.AccessToken, requestID)
			return err
		},
	}
	if st != nil && st.buffer {
		// Deferred to Commit, where the committer runs it with other
		// responses' writes; the compare-and-swap stays first.
		st.guard = rotate
		st.writes = append(st.writes, rest...)
		st.grant = requestID
		return nil
	}
	if err := rotate(ctx); err != nil {
		if errors.Is(err, storage.ErrNotFound) && st != nil {
			st.refreshRace = true
		}
		return toFositeErr(err)
	}
	for _, w := range rest {
		if err := w(ctx); err != nil {
			return toFositeErr(err)
		}
	}
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every refresh
// token of the grant is deleted.
func (f *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := f.store.DeleteTokens(ctx, storage.RefreshToken, requestID)
	return toFositeErr(err)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the grant is deleted.
func (f *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := f.store.DeleteTokens(ctx, storage.AccessToken, requestID)
	return toFositeErr(err)
}

// Authenticate implements the password grant's credential check. Unknown
// users, disabled users and wrong passwords all return fosite.ErrNotFound and
// all cost one password hash.
func (f *fositeStore) Authenticate(ctx context.Context, username, password string) (string, error) {
	u, err := f.srv.authenticateUser(ctx, username, password)
	if err != nil {
		return "", err
	}
	if u.MustChangePassword {
		if st := stateFrom(ctx); st != nil {
			st.passwordChange = true
		}
		f.srv.audit(ctx, "login_failed", slog.String("sub", u.ID), slog.String("reason", "password_change_required"))
		return "", fmt.Errorf("%w: %w", fosite.ErrNotFound, errPasswordChange)
	}
	if st := stateFrom(ctx); st != nil {
		st.user = &u
	}
	return u.ID, nil
}

// txKey marks a context whose transaction belongs to the token handler, so
// fosite's own BeginTX/Commit inside it join rather than nest.
type txKey struct{}

// BeginTX implements fositestorage.Transactional.
func (f *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	if st := stateFrom(ctx); st != nil && st.buffer {
		return ctx, nil // the writes are buffered; Commit hands them to the committer
	}
	if ctx.Value(txKey{}) != nil {
		return ctx, nil
	}
	return f.store.BeginTx(ctx)
}

// Commit implements fositestorage.Transactional.
func (f *fositeStore) Commit(ctx context.Context) error {
	if st := stateFrom(ctx); st != nil && st.buffer {
		return f.srv.flush(ctx, st)
	}
	if ctx.Value(txKey{}) != nil {
		return nil
	}
	return toFositeErr(f.store.CommitTx(ctx))
}

// Rollback implements fositestorage.Transactional.
func (f *fositeStore) Rollback(ctx context.Context) error {
	if st := stateFrom(ctx); st != nil && st.buffer {
		// st.late stays: a correct password's release is not a token
		// write, and token runs it if nothing commits it.
		st.guard, st.writes, st.grant = nil, nil, ""
		return nil
	}
	if ctx.Value(txKey{}) != nil {
		return nil
	}
	return f.store.RollbackTx(ctx)
}
