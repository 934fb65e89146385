package adminapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// User is the API form of a user; it never holds the password hash.
type User struct {
	ID       string   `json:"id"`
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
	// MustChangePassword: the user must choose a new password at the next
	// sign-in (set by a password reset with force_change).
	MustChangePassword bool   `json:"must_change_password"`
	CreatedAt          string `json:"created_at"`
	UpdatedAt          string `json:"updated_at"`
}

// UserInput is the body of POST /users (Password required) and of
// PUT /users/{id} (Password not allowed; the whole profile is replaced).
type UserInput struct {
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
	Password string   `json:"password,omitempty"`
}

// PasswordInput is the body of POST /users/{id}/password.
type PasswordInput struct {
	Password string `json:"password"`
	// ForceChange makes the user choose a new password at the next
	// sign-in; until then the password grant refuses them. It also ends
	// their browser sessions, so that the next sign-in asks.
	ForceChange bool `json:"force_change"`
}

// Count reports how many records an operation removed.
type Count struct {
	Revoked int64 `json:"revoked"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func viewUser(u storage.User) User {
	return User{ID: u.ID, Email: u.Email, Name: u.Name, Roles: nz(u.Roles), Disabled: u.Disabled,
		MustChangePassword: u.MustChangePassword, CreatedAt: rfc3339(u.CreatedAt), UpdatedAt: rfc3339(u.UpdatedAt)}
}

func userETag(u storage.User) string {
	return etagOf(struct {
		V User
		H string
	}{viewUser(u), u.PasswordHash}, u.UpdatedAt)
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("adminapi: random ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (in UserInput) validate() error {
	if len(in.Email) > 320 || !strings.Contains(in.Email, "@") || strings.ContainsAny(in.Email, " \t\r\n") || strings.ContainsFunc(in.Email, unicode.IsControl) {
		return problem(http.StatusUnprocessableEntity, "email must be an email address")
	}
	if len(in.Name) > 200 || strings.ContainsFunc(in.Name, unicode.IsControl) {
		return problem(http.StatusUnprocessableEntity, "name must be at most 200 characters, without control characters")
	}
	for _, r := range in.Roles {
		if r == "" || len(r) > 64 || strings.ContainsAny(r, " ,\t\r\n") || strings.ContainsFunc(r, unicode.IsControl) {
			return problem(http.StatusUnprocessableEntity, fmt.Sprintf("invalid role %q", r))
		}
	}
	return nil
}

func (a *API) checkPassword(pw string) (string, error) {
	if err := password.CheckPolicy(pw, password.DefaultMinLength); err != nil {
		return "", problem(http.StatusUnprocessableEntity, err.Error())
	}
	return password.Hash(pw, a.cfg.PasswordParams)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if email := q.Get("email"); email != "" {
		var us []storage.User
		u, err := a.cfg.Store.GetUserByEmail(r.Context(), email)
		if err == nil {
			us = []storage.User{u}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		writeJSON(w, http.StatusOK, paginate(us, func(u storage.User) string { return u.ID }, viewUser, limit, after))
		return nil
	}
	prefix := q.Get("email_prefix")
	if len(prefix) > 320 || !utf8.ValidString(prefix) || strings.ContainsFunc(prefix, unicode.IsControl) {
		return problem(http.StatusBadRequest, "email_prefix must be at most 320 characters of text")
	}
	l, err := a.userPage(r.Context(), storage.UserQuery{EmailPrefix: prefix, After: after, Limit: limit})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// userPage reads one page of users from the store's index, and the cursor
// of the next page when there is one: the last ID, or with an email prefix
// the last lower-cased email.
func (a *API) userPage(ctx context.Context, q storage.UserQuery) (List[User], error) {
	limit := q.Limit
	q.Limit++ // one more tells whether a next page exists
	us, err := a.cfg.Store.ListUsersPage(ctx, q)
	if err != nil {
		return List[User]{}, err
	}
	out := List[User]{Items: make([]User, 0, min(len(us), limit))}
	for _, u := range us[:min(len(us), limit)] {
		out.Items = append(out.Items, viewUser(u))
	}
	if len(us) > limit {
		last := us[limit-1].ID
		if q.EmailPrefix != "" {
			last = strings.ToLower(us[limit-1].Email)
		}
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(last))
	}
	return out, nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.cfg.Store.GetUser(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) (err error) {
	var in UserInput
	if err := decode(r, &in); err != nil {
		return err
	}
	defer func() { a.audit(r, "users create", in.Email, err) }()
	if err := in.validate(); err != nil {
		return err
	}
	if in.Password == "" {
		return problem(http.StatusUnprocessableEntity, "password is required")
	}
	h, err := a.checkPassword(in.Password)
	if err != nil {
		return err
	}
	id, err := newID()
	if err != nil {
		return err
	}
	now := a.cfg.Now().UTC()
	u := storage.User{ID: id, Email: in.Email, Name: in.Name, Roles: in.Roles, Disabled: in.Disabled, PasswordHash: h, CreatedAt: now, UpdatedAt: now}
	if err := a.cfg.Store.CreateUser(r.Context(), u); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return problem(http.StatusConflict, "a user with this email already exists")
		}
		return err
	}
	w.Header().Set("ETag", userETag(u))
	w.Header().Set("Location", Prefix+"/users/"+u.ID)
	writeJSON(w, http.StatusCreated, viewUser(u))
	return nil
}

// updateUser applies fn to the user of the path under If-Match, bumping
// UpdatedAt when the user changed, and revokes every token and session of a
// user who became disabled.
//
// after, if given, runs on the updated user before the response is written.
func (a *API) updateUser(w http.ResponseWriter, r *http.Request, fn func(*storage.User) error, after ...func(storage.User) error) (storage.User, error) {
	id := mux.Vars(r)["id"]
	wasEnabled := false
	u, err := a.cfg.Store.UpdateUser(r.Context(), id, func(u storage.User) (storage.User, error) {
		if err := checkIfMatch(r, userETag(u)); err != nil {
			return u, err
		}
		before, hash := viewUser(u), u.PasswordHash
		wasEnabled = !u.Disabled
		if err := fn(&u); err != nil {
			return u, err
		}
		if after := viewUser(u); fmt.Sprint(before) != fmt.Sprint(after) || hash != u.PasswordHash {
			u.UpdatedAt = a.cfg.Now().UTC()
		}
		return u, nil
	})
	if err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return u, problem(http.StatusConflict, "a user with this email already exists")
		}
		return u, err
	}
	if wasEnabled && u.Disabled {
		// A disabled user's sessions end and their refresh tokens stop.
		if _, err := a.revokeAll(r.Context(), u.ID); err != nil {
			return u, err
		}
	}
	for _, f := range after {
		if err := f(u); err != nil {
			return u, err
		}
	}
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusOK, viewUser(u))
	return u, nil
}

func (a *API) putUser(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	var in UserInput
	if err := decode(r, &in); err != nil {
		return err
	}
	defer func() { a.audit(r, "users update", id, err) }()
	if in.Password != "" {
		return problem(http.StatusUnprocessableEntity, "set the password with POST /users/{id}/password")
	}
	if err := in.validate(); err != nil {
		return err
	}
	if other, err := a.cfg.Store.GetUserByEmail(r.Context(), in.Email); err == nil && other.ID != id {
		return problem(http.StatusConflict, "a user with this email already exists")
	}
	_, err = a.updateUser(w, r, func(u *storage.User) error {
		u.Email, u.Name, u.Roles, u.Disabled = in.Email, in.Name, in.Roles, in.Disabled
		if u.Roles == nil {
			u.Roles = []string{}
		}
		slices.Sort(u.Roles)
		return nil
	})
	return err
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	var in PasswordInput
	if err := decode(r, &in); err != nil {
		return err
	}
	defer func() { a.audit(r, "users set-password", id, err, slog.Bool("force_change", in.ForceChange)) }()
	h, err := a.checkPassword(in.Password)
	if err != nil {
		return err
	}
	// A change form shown for an earlier reset password stops working; a
	// forced reset also ends the browser sessions.
	after := func(u storage.User) error {
		if in.ForceChange {
			_, err := a.cfg.Server.EndBrowserSessions(context.WithoutCancel(r.Context()), u.ID)
			return err
		}
		return authserver.PasswordSet(r.Context(), a.cfg.Store, u.ID, false)
	}
	_, err = a.updateUser(w, r, func(u *storage.User) error {
		u.PasswordHash, u.MustChangePassword = h, in.ForceChange
		return nil
	}, after)
	return err
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	defer func() { a.audit(r, "users disable", id, err) }()
	_, err = a.updateUser(w, r, func(u *storage.User) error {
		u.Disabled = true
		return nil
	})
	return err
}

func (a *API) enableUser(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	defer func() { a.audit(r, "users enable", id, err) }()
	_, err = a.updateUser(w, r, func(u *storage.User) error {
		u.Disabled = false
		return nil
	})
	return err
}

// deleteUser deletes a user and revokes their tokens and sessions (whose
// clients get logout tokens).
func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	defer func() { a.audit(r, "users delete", id, err) }()
	u, err := a.cfg.Store.GetUser(r.Context(), id)
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, userETag(u)); err != nil {
		return err
	}
	if _, err := a.revokeAll(r.Context(), id); err != nil {
		return err
	}
	if err := a.cfg.Store.DeleteUser(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listConsents(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if _, err := a.cfg.Store.GetUser(r.Context(), id); err != nil {
		return err
	}
	cs, err := authserver.ListConsents(r.Context(), a.cfg.Store, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[authserver.Consent]{Items: nz(cs)})
	return nil
}

// revokeConsents forgets the user's consent to ?client_id, or to every
// client.
func (a *API) revokeConsents(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	client := r.URL.Query().Get("client_id")
	defer func() { a.audit(r, "users revoke-consent", strings.TrimSpace(id+" "+client), err) }()
	if _, err := a.cfg.Store.GetUser(r.Context(), id); err != nil {
		return err
	}
	n, err := authserver.RevokeConsents(r.Context(), a.cfg.Store, id, client)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Count{Revoked: int64(n)})
	return nil
}

// revokeSessions ends every browser session of the user and revokes their
// tokens (every record with the user as subject).
func (a *API) revokeSessions(w http.ResponseWriter, r *http.Request) (err error) {
	id := mux.Vars(r)["id"]
	defer func() { a.audit(r, "users revoke-sessions", id, err) }()
	_, n, err := a.revokeUserSessions(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Count{Revoked: n})
	return nil
}

// revokeUserSessions ends every browser session of the user with ID id and
// revokes every token with the user as subject (the session records among
// them), for the API and the console; it returns the user and how many
// records it ended.
func (a *API) revokeUserSessions(ctx context.Context, id string) (storage.User, int64, error) {
	u, err := a.cfg.Store.GetUser(ctx, id)
	if err != nil {
		return u, 0, err
	}
	n, err := a.revokeAll(ctx, id)
	return u, n, err
}

// revokeAll ends every browser session of the user, sending logout tokens
// to the clients that got ID tokens in them (Server.EndBrowserSessions),
// then revokes every record of the user, tokens and consents. The
// revocation runs even when ending a session failed, and neither stops if
// the caller goes away: a half-done revocation of a user just disabled would
// not be retried (the user is no longer enabled). It returns how many
// sessions and records it ended.
func (a *API) revokeAll(ctx context.Context, id string) (int64, error) {
	ctx = context.WithoutCancel(ctx)
	ended, endErr := a.cfg.Server.EndBrowserSessions(ctx, id)
	n, err := a.cfg.Store.RevokeTokens(ctx, storage.TokenFilter{Subject: id})
	return int64(ended) + n, errors.Join(endErr, err)
}

// Session is the API form of a browser session: its public identifier
// (the OpenID Connect sid, never the cookie), its times and the grants made
// in it.
type Session struct {
	ID        string   `json:"id"`
	CreatedAt string   `json:"created_at"`
	ExpiresAt string   `json:"expires_at"`
	Clients   []string `json:"clients"`
	Grants    []Grant  `json:"grants"`
}

// Grant is a grant made in a session: revoke its tokens with
// POST /tokens/revoke {"grant_id"}.
type Grant struct {
	GrantID  string `json:"grant_id"`
	ClientID string `json:"client_id"`
}

// listSessions lists the user's live browser sessions.
func (a *API) listSessions(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if _, err := a.cfg.Store.GetUser(r.Context(), id); err != nil {
		return err
	}
	ss, err := authserver.ListBrowserSessions(r.Context(), a.cfg.Store, id, a.cfg.Now())
	if err != nil {
		return err
	}
	out := List[Session]{Items: make([]Session, 0, len(ss))}
	for _, s := range ss {
		v := Session{ID: s.ID, CreatedAt: rfc3339(s.CreatedAt), ExpiresAt: rfc3339(s.ExpiresAt), Clients: []string{}, Grants: []Grant{}}
		for _, g := range s.Grants {
			v.Grants = append(v.Grants, Grant{GrantID: g.GrantID, ClientID: g.ClientID})
			if !slices.Contains(v.Clients, g.ClientID) {
				v.Clients = append(v.Clients, g.ClientID)
			}
		}
		out.Items = append(out.Items, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// endSession ends one browser session of the user and sends logout tokens
// to the clients that got ID tokens in it; its tokens stay valid (revoke
// them by grant).
func (a *API) endSession(w http.ResponseWriter, r *http.Request) (err error) {
	id, sid := mux.Vars(r)["id"], mux.Vars(r)["sid"]
	defer func() { a.audit(r, "users end-session", id, err) }()
	if _, err := a.cfg.Store.GetUser(r.Context(), id); err != nil {
		return err
	}
	if err := a.cfg.Server.EndBrowserSession(r.Context(), id, sid); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return problem(http.StatusNotFound, "the user has no such session")
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
