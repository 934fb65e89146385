package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Browser sessions. The cookie holds only an opaque random value; the
// session is stored server-side under the value's SHA-256 (a database reader
// cannot hijack sessions), so signing out, `users disable` and `tokens revoke
// --user` end it on every instance at once. A new value is issued at every
// sign-in: a session ID planted before sign-in is never promoted (no session
// fixation).

// Cookie names. The __Host- prefix (RFC 6265bis §4.1.3.2) pins a cookie to
// the origin over https; browsers refuse it over plain http.
const (
	sessionCookieName = "authserver-session"
	csrfCookieName    = "authserver-csrf"
	hostCookiePrefix  = "__Host-"
)

// browserSession is a signed-in user in a browser.
type browserSession struct {
	// id is the stored key (the SHA-256 of the cookie value).
	id string
	// sid is the session's public identifier (OpenID Connect sid).
	sid      string
	user     storage.User
	authTime time.Time
	// priorSIDs are the sids of the same user's sessions this one
	// replaced by a new sign-in (prompt=login, max_age): the OP session
	// went on, so ID tokens issued under them still belong to it.
	priorSIDs []string
}

// hasSID reports whether sid names bs or a session it carried on.
func (bs *browserSession) hasSID(sid string) bool {
	return sid != "" && (sid == bs.sid || slices.Contains(bs.priorSIDs, sid))
}

// sessionPayload is the stored form of a browser session.
type sessionPayload struct {
	AuthTime time.Time `json:"auth_time"`
	AMR      []string  `json:"amr,omitempty"`
	// PriorSIDs: see browserSession.priorSIDs.
	PriorSIDs []string `json:"prior_sids,omitempty"`
}

// maxPriorSIDs bounds the sids a session carries on (the most recent).
const maxPriorSIDs = 16

// sessionHasSID reports whether the stored session t is, or carried on,
// the session sid.
func sessionHasSID(t storage.Token, sid string) bool {
	if sid == "" {
		return false
	}
	if t.RequestID == sid {
		return true
	}
	var p sessionPayload
	return json.Unmarshal(t.Payload, &p) == nil && slices.Contains(p.PriorSIDs, sid)
}

// randomHandle returns 32 random bytes, base64url-encoded.
func randomHandle() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authserver: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashHandle is the stored key of a bearer handle (cookie, pending request).
func hashHandle(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// secureCookies reports whether cookies are Secure with the __Host- prefix:
// whenever the issuer is https.
func (s *Server) secureCookies() bool { return strings.HasPrefix(s.cfg.Issuer, "https://") }

func (s *Server) cookieName(base string) string {
	if s.secureCookies() {
		return hostCookiePrefix + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     s.cookieName(base),
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.secureCookies(),
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	case maxAge < 0:
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func (s *Server) cookieValue(r *http.Request, base string) string {
	c, err := r.Cookie(s.cookieName(base))
	if err != nil || len(c.Value) > 100 {
		return ""
	}
	return c.Value
}

// currentSession returns the browser's live session, or nil. A session of a
// disabled or deleted user is ended here as well.
func (s *Server) currentSession(ctx context.Context, r *http.Request) (*browserSession, error) {
	v := s.cookieValue(r, sessionCookieName)
	if v == "" {
		return nil, nil
	}
	id := hashHandle(v)
	t, err := s.store.GetToken(ctx, storage.BrowserSession, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !t.Active || !t.ExpiresAt.After(s.cfg.Now()) {
		return nil, nil
	}
	u, err := s.store.GetUser(ctx, t.Subject)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		_ = s.store.DeleteToken(ctx, storage.BrowserSession, id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p sessionPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, fmt.Errorf("authserver: decode session: %w", err)
	}
	return &browserSession{id: id, sid: t.RequestID, user: u, authTime: p.AuthTime, priorSIDs: p.PriorSIDs}, nil
}

// startSession signs u in: any session the browser had is ended and a new
// one, with a new cookie value and a new sid, starts. When the session
// replaced was a live one of u (a new sign-in for prompt=login or max_age),
// the OP session goes on: the clients to notify of its end are carried
// over (carryLogoutTargets). A live session of another user has ended: its
// clients get their logout tokens now (Back-Channel Logout 1.0), in the
// background.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, u storage.User) (*browserSession, error) {
	var replaced *storage.Token
	if old := s.cookieValue(r, sessionCookieName); old != "" {
		id := hashHandle(old)
		t, err := s.store.GetToken(ctx, storage.BrowserSession, id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			// Deleting the record claims it: of two requests replacing the
			// same session, one carries its clients over or notifies them.
			err := s.store.DeleteToken(ctx, storage.BrowserSession, id)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			if err == nil && t.Active && t.ExpiresAt.After(s.cfg.Now()) && t.RequestID != "" {
				replaced = &t
			}
		}
	}
	v, err := randomHandle()
	if err != nil {
		return nil, err
	}
	sid, err := randomHandle()
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	var prior []string
	if replaced != nil && replaced.Subject == u.ID {
		var p sessionPayload
		_ = json.Unmarshal(replaced.Payload, &p) // a bad payload only loses the older sids
		prior = append(p.PriorSIDs, replaced.RequestID)
		prior = prior[max(0, len(prior)-maxPriorSIDs):]
	}
	b, err := json.Marshal(sessionPayload{AuthTime: now, AMR: []string{"pwd"}, PriorSIDs: prior})
	if err != nil {
		return nil, fmt.Errorf("authserver: encode session: %w", err)
	}
	bs := &browserSession{id: hashHandle(v), sid: sid, user: u, authTime: now, priorSIDs: prior}
	err = s.store.CreateToken(ctx, storage.Token{Kind: storage.BrowserSession, Signature: bs.id, RequestID: sid,
		Subject: u.ID, Active: true, RequestedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL), Payload: b})
	if err != nil {
		return nil, fmt.Errorf("authserver: store session: %w", err)
	}
	s.setCookie(w, sessionCookieName, v, s.cfg.SessionTTL)
	switch {
	case replaced == nil:
	case replaced.Subject == u.ID:
		s.carryLogoutTargets(ctx, replaced.RequestID, bs, now.Add(s.cfg.SessionTTL))
	default:
		s.sessionEnded(ctx, replaced.RequestID, replaced.Subject, endedByOtherUser)
	}
	return bs, nil
}

// endSession signs the browser out.
func (s *Server) endSession(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	s.setCookie(w, sessionCookieName, "", -1)
	if v := s.cookieValue(r, sessionCookieName); v != "" {
		if err := s.store.DeleteToken(ctx, storage.BrowserSession, hashHandle(v)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// csrfBinding returns the browser's CSRF cookie value, setting a new one
// when it has none. Forms shown before sign-in are bound to it, which stops
// login CSRF: another site cannot read it to forge the token.
func (s *Server) csrfBinding(w http.ResponseWriter, r *http.Request) (string, error) {
	if v := s.cookieValue(r, csrfCookieName); v != "" {
		return v, nil
	}
	v, err := randomHandle()
	if err != nil {
		return "", err
	}
	s.setCookie(w, csrfCookieName, v, 0)
	return v, nil
}
