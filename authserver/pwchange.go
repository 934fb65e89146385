package authserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// A password reset that forces a change (storage.User.MustChangePassword,
// set by the admin API): the password grant refuses the user with
// invalid_grant, and the sign-in page, once the reset password is accepted,
// asks for a new one before it starts a session. The change form carries a
// single-use handle, stored (hashed) as a token record of passwordChangeKind
// for passwordChangeTTL, which proves that the password was just verified;
// the password itself never goes back to the browser. The handle is bound to
// the reset password it was issued for: once an administrator sets another
// password, or the change is no longer required, it is refused. Ending the
// user's browser sessions (EndBrowserSessions) or revoking their tokens
// deletes it as well.

// passwordChangeKind is the token record of a pending password change:
// Signature is the hash of the form's handle, Subject the user, Payload a
// passwordChangePayload.
const passwordChangeKind storage.TokenKind = "password_change"

// passwordChangePayload is the stored form of a pending password change.
type passwordChangePayload struct {
	// For is the SHA-256 of the stored password hash the handle was issued
	// for (passwordBinding): the reset password that was just verified.
	For string `json:"for"`
}

// passwordBinding is what a change handle stores of the user's password
// hash: its SHA-256, so that the token records hold no copy of the hash.
func passwordBinding(passwordHash string) string { return hashHandle(passwordHash) }

// msgPasswordChangeStale answers a change form whose handle no longer
// matches the account: the password was set again, or the change is no
// longer required.
const msgPasswordChangeStale = "This password change is no longer valid; sign in again."

// errPasswordChangeStale marks a change handle that no longer matches the
// account (see msgPasswordChangeStale).
var errPasswordChangeStale = errors.New("authserver: the password change is no longer valid")

// passwordChangeTTL bounds how long the change form may stay open.
const passwordChangeTTL = 10 * time.Minute

// fieldChange carries the change handle in the form.
const fieldChange = "change"

// descPasswordChange is the password grant's answer to a user who must
// change the password first (RFC 6749 §5.2 invalid_grant).
const descPasswordChange = "The password was reset by an administrator and must be changed before use: sign in on the sign-in page to choose a new one."

// errPasswordChange marks a correct password of a user who must change it.
var errPasswordChange = errors.New("authserver: the password must be changed")

// startPasswordChange shows the change form to u, whose reset password was
// just verified.
func (s *Server) startPasswordChange(w http.ResponseWriter, r *http.Request, az *authzRequest, auth string, u storage.User) {
	ctx := r.Context()
	handle, err := randomHandle()
	var payload []byte
	if err == nil {
		payload, err = json.Marshal(passwordChangePayload{For: passwordBinding(u.PasswordHash)})
	}
	if err == nil {
		now := s.cfg.Now().UTC()
		sig := hashHandle(handle)
		err = s.store.CreateToken(ctx, storage.Token{Kind: passwordChangeKind, Signature: sig, RequestID: sig, Subject: u.ID,
			Active: true, RequestedAt: now, ExpiresAt: now.Add(passwordChangeTTL), Payload: payload})
	}
	if err != nil {
		s.unavailablePage(w, r, "could not start a password change", err)
		return
	}
	s.audit(ctx, "password_change_required", slog.String("sub", u.ID))
	s.renderPasswordChange(w, r, http.StatusOK, az, auth, handle, u.Email, "")
}

func (s *Server) renderPasswordChange(w http.ResponseWriter, r *http.Request, status int, az *authzRequest, auth, handle, email, msg string) {
	binding, err := s.csrfBinding(w, r)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, errServerError, genericServerErrorDetail)
		return
	}
	d := ui.PasswordChange{Action: s.path("/login"), CSRF: s.csrf.Token("password_change", binding, "auth:"+auth, hashHandle(handle)),
		Username: email, MinLength: password.DefaultMinLength, Error: msg,
		Hidden: []ui.Field{{Name: fieldChange, Value: handle}}}
	if uc, ok := deviceSignIn(r); ok && az == nil {
		// A device sign-in goes on to the device's confirmation once the
		// password is changed, as the sign-in form would have.
		d.Hidden = append(d.Hidden, ui.Field{Name: fieldUserCode, Value: uc})
	}
	var targets []string
	if az != nil {
		d.ClientName = clientDisplayName(az.client)
		d.Hidden = append(d.Hidden, ui.Field{Name: fieldAuth, Value: auth})
		targets = append(targets, formTarget(az.redirectURI))
	}
	s.pages.Render(w, status, ui.PagePassword, d, targets...)
}

// postPasswordChange handles the change form: it checks the handle and the
// new password, stores the password's hash, clears MustChangePassword and
// signs the user in.
func (s *Server) postPasswordChange(w http.ResponseWriter, r *http.Request, form url.Values, auth string) {
	ctx := r.Context()
	handle := form.Get(fieldChange)
	if len(handle) > 100 || !s.csrf.Valid(form.Get(fieldCSRF), "password_change", s.cookieValue(r, csrfCookieName), "auth:"+auth, hashHandle(handle)) {
		s.csrfRejected(ctx, w, "password_change")
		return
	}
	var az *authzRequest
	if auth != "" {
		var aerr *authzError
		if az, aerr = s.loadPending(ctx, auth); aerr != nil {
			s.authorizeFailed(w, r, az, aerr)
			return
		}
	}
	sig := hashHandle(handle)
	t, err := s.store.GetToken(ctx, passwordChangeKind, sig)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !t.ExpiresAt.After(s.cfg.Now())) {
		s.renderLogin(w, r, http.StatusBadRequest, az, auth, "", "The time to choose a new password ran out. Sign in again with the password you were given.")
		return
	}
	if err != nil {
		s.unavailablePage(w, r, "password change: reading the handle failed", err)
		return
	}
	u, err := s.store.GetUser(ctx, t.Subject)
	if err != nil || u.Disabled {
		_ = s.store.DeleteToken(ctx, passwordChangeKind, sig)
		s.renderLogin(w, r, http.StatusUnauthorized, az, auth, "", "Incorrect email or password.")
		return
	}
	// stale refuses a handle that no longer matches the account.
	stale := func() {
		s.audit(ctx, "password_change_refused", slog.String("sub", u.ID), slog.String("reason", "stale_handle"))
		s.renderLogin(w, r, http.StatusBadRequest, az, auth, "", msgPasswordChangeStale)
	}
	var p passwordChangePayload
	if err := json.Unmarshal(t.Payload, &p); err != nil || !passwordChangeCurrent(u, p) {
		// The password was set again since the handle was issued (an
		// administrator's new reset), or no change is required any more:
		// whoever holds the old form must sign in with the password that
		// is valid now.
		_ = s.store.DeleteToken(ctx, passwordChangeKind, sig)
		stale()
		return
	}
	pw, confirm := form.Get("new_password"), form.Get("confirm_password")
	msg := ""
	switch {
	case len(pw) > maxCredential:
		msg = fmt.Sprintf("The password must be at most %d characters.", maxCredential)
	case pw != confirm:
		msg = "The two passwords differ."
	default:
		if perr := password.CheckPolicy(pw, password.DefaultMinLength); perr != nil {
			msg = "This password cannot be used: " + perr.Error() + "."
		}
	}
	var hash string
	if msg == "" {
		hash, err = s.hashNewPassword(ctx, pw, u.PasswordHash)
		switch {
		case errors.Is(err, errPasswordChange):
			msg = "Choose a password other than the one you were given."
		case err != nil:
			s.unavailablePage(w, r, "password change: hashing failed", err)
			return
		}
	}
	if msg != "" {
		s.renderPasswordChange(w, r, http.StatusBadRequest, az, auth, handle, u.Email, msg)
		return
	}
	// The handle is single-use: of two submissions, one deletes it.
	if err := s.store.DeleteToken(ctx, passwordChangeKind, sig); err != nil {
		s.renderLogin(w, r, http.StatusBadRequest, az, auth, "", "The time to choose a new password ran out. Sign in again with the password you were given.")
		return
	}
	u, err = s.store.UpdateUser(ctx, u.ID, func(cur storage.User) (storage.User, error) {
		if cur.Disabled {
			return cur, errPasswordChange
		}
		// Checked again against the record being replaced: an
		// administrator's reset committed since the read above wins.
		if !passwordChangeCurrent(cur, p) {
			return cur, errPasswordChangeStale
		}
		cur.PasswordHash, cur.MustChangePassword, cur.UpdatedAt = hash, false, s.cfg.Now().UTC()
		return cur, nil
	})
	if errors.Is(err, errPasswordChangeStale) {
		stale()
		return
	}
	if err != nil {
		s.log.Warn("password change: storing the new password failed", "err", err)
		s.renderLogin(w, r, http.StatusServiceUnavailable, az, auth, "", "The password could not be changed. Sign in again with the password you were given.")
		return
	}
	s.audit(ctx, "password_changed", slog.String("sub", u.ID), slog.String("reason", "admin_reset"))
	s.signedIn(w, r, u, auth)
}

// EndPasswordChanges deletes the user's pending password changes: change
// forms already shown stop working. EndBrowserSessions calls it; call it
// also after setting a user's password. It returns how many ended.
func EndPasswordChanges(ctx context.Context, st storage.Tokens, userID string) (int, error) {
	n, err := eachRecord(ctx, st, passwordChangeKind, userID, func(t storage.Token) error {
		return st.DeleteToken(ctx, passwordChangeKind, t.Signature)
	})
	if err != nil {
		return n, fmt.Errorf("authserver: end the password changes of %s: %w", userID, err)
	}
	return n, nil
}

// PasswordSet ends what setting a user's password leaves stale: the change
// forms shown for an earlier reset password (EndPasswordChanges) and, when
// forceChange makes the user choose a new password, every browser session
// as well (EndBrowserSessions, which ends the forms too; it sends no logout
// tokens). The CLI calls it after storing the password; the admin API calls
// it without forceChange, and Server.EndBrowserSessions with it.
func PasswordSet(ctx context.Context, st storage.Tokens, userID string, forceChange bool) error {
	if forceChange {
		if _, err := EndBrowserSessions(ctx, st, userID); err != nil {
			return fmt.Errorf("authserver: end the browser sessions of %s: %w", userID, err)
		}
		return nil
	}
	_, err := EndPasswordChanges(ctx, st, userID)
	return err
}

// passwordChangeCurrent reports whether the change handle p still applies
// to u: a change is still required and the stored password is the one the
// handle was issued for.
func passwordChangeCurrent(u storage.User, p passwordChangePayload) bool {
	return u.MustChangePassword && p.For != "" && subtle.ConstantTimeCompare([]byte(p.For), []byte(passwordBinding(u.PasswordHash))) == 1
}

// hashNewPassword hashes pw in a hashing slot; errPasswordChange when pw is
// the current password (old is its hash).
func (s *Server) hashNewPassword(ctx context.Context, pw, old string) (string, error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	if _, err := password.Verify(pw, old, s.cfg.PasswordParams); err == nil {
		return "", errPasswordChange
	}
	h, err := password.Hash(pw, s.cfg.PasswordParams)
	if err != nil {
		return "", fmt.Errorf("authserver: hash the new password: %w", err)
	}
	return h, nil
}
