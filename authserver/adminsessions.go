package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Browser sessions as the admin API sees them: listed by their public
// identifier (the sid), ended one by one or all at once.

// EndBrowserSessions ends every browser session of the user (their
// sign-in cookies stop working on every instance) and every pending
// password change (EndPasswordChanges); tokens are left alone, and no
// logout token is sent (the method Server.EndBrowserSessions sends them). It
// returns how many sessions ended.
func EndBrowserSessions(ctx context.Context, st storage.Tokens, userID string) (int, error) {
	return endEach(ctx, st, userID, func(t storage.Token) error { return endSessionRecord(ctx, st, t) })
}

// endEach ends the user's pending password changes, then calls end on the
// record of each browser session of the user; it returns how many sessions
// ended.
func endEach(ctx context.Context, st storage.Tokens, userID string, end func(storage.Token) error) (int, error) {
	if _, err := EndPasswordChanges(ctx, st, userID); err != nil {
		return 0, err
	}
	return eachRecord(ctx, st, storage.BrowserSession, userID, end)
}

// eachRecord calls end on every record of kind whose subject is userID and
// returns how many it ended: a record that another request ended first
// (storage.ErrNotFound) is skipped, any other error stops.
func eachRecord(ctx context.Context, st storage.Tokens, kind storage.TokenKind, userID string, end func(storage.Token) error) (int, error) {
	ts, err := st.ListTokens(ctx, kind, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		err := end(t)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// endSessionRecord deletes a browser session's record and the records of
// the clients to notify of its end (their sid is the session's RequestID).
func endSessionRecord(ctx context.Context, st storage.Tokens, t storage.Token) error {
	if err := st.DeleteToken(ctx, storage.BrowserSession, t.Signature); err != nil {
		return err
	}
	_, err := st.DeleteTokens(ctx, logoutTargetKind, t.RequestID)
	return err
}

// SessionInfo describes a live browser session for administrators.
type SessionInfo struct {
	// ID is the session's public identifier (the OpenID Connect sid),
	// never its cookie.
	ID        string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Grants are the grants (each a client's tokens, under one request ID)
	// made in the session that still have tokens.
	Grants []SessionGrant
}

// SessionGrant is a grant made in a browser session.
type SessionGrant struct {
	GrantID  string
	ClientID string
}

// ListBrowserSessions returns the user's live browser sessions, oldest
// first, with the grants made in each.
func ListBrowserSessions(ctx context.Context, st storage.Tokens, userID string, now time.Time) ([]SessionInfo, error) {
	ts, err := st.ListTokens(ctx, storage.BrowserSession, userID)
	if err != nil {
		return nil, err
	}
	out := []SessionInfo{}
	index := map[string]int{}
	for _, t := range ts {
		if !t.Active || !t.ExpiresAt.After(now) || t.RequestID == "" {
			continue
		}
		index[t.RequestID] = len(out)
		out = append(out, SessionInfo{ID: t.RequestID, CreatedAt: t.RequestedAt, ExpiresAt: t.ExpiresAt, Grants: []SessionGrant{}})
	}
	if len(out) == 0 {
		return out, nil
	}
	seen := map[string]bool{}
	for _, kind := range []storage.TokenKind{storage.RefreshToken, storage.AccessToken} {
		ts, err := st.ListTokens(ctx, kind, userID)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if seen[t.RequestID] {
				continue
			}
			var p struct {
				Session struct {
					SID string `json:"sid"`
				} `json:"session"`
			}
			if json.Unmarshal(t.Payload, &p) != nil {
				continue
			}
			if i, ok := index[p.Session.SID]; ok && p.Session.SID != "" {
				seen[t.RequestID] = true
				out[i].Grants = append(out[i].Grants, SessionGrant{GrantID: t.RequestID, ClientID: t.ClientID})
			}
		}
	}
	return out, nil
}

// findBrowserSession returns the record of the user's browser session with
// the public identifier sid, or storage.ErrNotFound.
func findBrowserSession(ctx context.Context, st storage.Tokens, userID, sid string) (storage.Token, error) {
	ts, err := st.ListTokens(ctx, storage.BrowserSession, userID)
	if err != nil {
		return storage.Token{}, err
	}
	for _, t := range ts {
		if t.RequestID == sid && sid != "" {
			return t, nil
		}
	}
	return storage.Token{}, fmt.Errorf("authserver: session of %s: %w", userID, storage.ErrNotFound)
}

// EndBrowserSession ends the user's browser session with the public
// identifier sid: its cookie stops working on every instance, and every
// client that got a code for an ID token in it is sent a logout token, as
// on a sign-out (the OpenID Provider's session has ended, whoever ended it,
// and the clients' sessions end with it: Back-Channel Logout 1.0). Tokens
// issued in the session are left alone (revoke them by grant). Delivery
// runs in the background (WaitBackchannel). It returns storage.ErrNotFound
// when the user has no such session.
func (s *Server) EndBrowserSession(ctx context.Context, userID, sid string) error {
	t, err := findBrowserSession(ctx, s.store, userID, sid)
	if err != nil {
		return err
	}
	return s.endAndNotify(ctx, t)
}

// EndBrowserSessions ends every browser session and pending password change
// of the user, as the function EndBrowserSessions does, and sends logout
// tokens for each session as the method EndBrowserSession does. The clients
// of a session that ended in the meantime without being told (a disabled
// user's session is dropped when next seen; a sign-in carries the clients
// of the session it replaces over to a new one) are told too. It returns
// how many sessions ended. Call it before revoking a user's tokens
// wholesale (storage.Tokens.RevokeTokens by subject), which would drop the
// records of whom to notify.
func (s *Server) EndBrowserSessions(ctx context.Context, userID string) (int, error) {
	n, err := endEach(ctx, s.store, userID, func(t storage.Token) error {
		if err := s.store.DeleteToken(ctx, storage.BrowserSession, t.Signature); err != nil {
			return err
		}
		s.auditSignedOut(ctx, userID, endedByAdmin)
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("authserver: end the browser sessions of %s: %w", userID, err)
	}
	// Every target left is of a session that has ended: the ones just
	// ended, and any that ended without telling its clients.
	ts, err := s.store.ListTokens(ctx, logoutTargetKind, userID)
	if err != nil {
		return n, fmt.Errorf("authserver: list the logout targets of %s: %w", userID, err)
	}
	s.notifyTargets(context.WithoutCancel(ctx), userID, ts)
	return n, nil
}

// endAndNotify deletes the browser session record t and notifies the
// clients that got ID tokens in it. Deleting the record claims the session:
// of two requests ending it, one notifies.
func (s *Server) endAndNotify(ctx context.Context, t storage.Token) error {
	if err := s.store.DeleteToken(ctx, storage.BrowserSession, t.Signature); err != nil {
		return fmt.Errorf("authserver: end a browser session of %s: %w", t.Subject, err)
	}
	s.sessionEnded(ctx, t.RequestID, t.Subject, endedByAdmin)
	return nil
}
