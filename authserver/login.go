package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/storage"
)

// The sign-in, consent and sign-out pages. Form contract (kept for scripts
// and tests): the sign-in form has inputs named username and password; the
// consent form has submit buttons named decision with the values allow and
// deny; every form carries a hidden csrf_token.

const (
	fieldCSRF     = "csrf_token"
	fieldAuth     = "auth"
	maxPageForm   = 16 << 10
	maxCredential = 1024
)

// readPageForm reads a page's POSTed form; nil when it is malformed (a
// NUL byte or invalid UTF-8 included).
func readPageForm(w http.ResponseWriter, r *http.Request) url.Values {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPageForm))
	if err != nil {
		return nil
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil
	}
	for k, vs := range form {
		if !formText(k, vs) {
			return nil
		}
	}
	return form
}

// handleLogin serves the sign-in page (GET) and its form (POST).
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		s.postLogin(w, r)
		return
	}
	auth := r.URL.Query().Get(fieldAuth)
	var az *authzRequest
	if auth != "" {
		var aerr *authzError
		if az, aerr = s.loadPending(r.Context(), auth); aerr != nil {
			s.authorizeFailed(w, r, az, aerr)
			return
		}
	}
	s.renderLogin(w, r, http.StatusOK, az, auth, "", "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, az *authzRequest, auth, username, msg string) {
	binding, err := s.csrfBinding(w, r)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, errServerError, genericServerErrorDetail)
		return
	}
	d := ui.Login{Action: s.path("/login"), CSRF: s.csrf.Token("login", binding, "auth:"+auth), Username: username, Error: msg}
	if uc, ok := deviceSignIn(r); ok && az == nil {
		d.Hidden = []ui.Field{{Name: fieldUserCode, Value: uc}} // sign-in for the device flow
	}
	var targets []string
	if az != nil {
		d.ClientName = clientDisplayName(az.client)
		d.Hidden = []ui.Field{{Name: fieldAuth, Value: auth}}
		if username == "" {
			d.Username = az.form.Get("login_hint")
		}
		targets = append(targets, formTarget(az.redirectURI))
	}
	s.pages.Render(w, status, ui.PageLogin, d, targets...)
}

func clientDisplayName(c storage.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form := readPageForm(w, r)
	if form == nil {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "The form could not be read.")
		return
	}
	r.PostForm = form // for deviceSignIn
	auth := form.Get(fieldAuth)
	if form.Has(fieldChange) {
		s.postPasswordChange(w, r, form, auth)
		return
	}
	if !s.csrf.Valid(form.Get(fieldCSRF), "login", s.cookieValue(r, csrfCookieName), "auth:"+auth) {
		s.csrfRejected(ctx, w, "login")
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
	username, pw := strings.TrimSpace(form.Get("username")), form.Get("password")
	if username == "" || pw == "" || len(username) > maxCredential || len(pw) > maxCredential {
		s.renderLogin(w, r, http.StatusBadRequest, az, auth, limitString(username, maxCredential), "Enter your email and password.")
		return
	}
	st := &requestState{ip: s.clientIP(r)}
	actx := withState(ctx, st)
	u, err := s.authenticateUser(actx, username, pw)
	if err != nil {
		var oe *oauthError
		switch {
		case errors.As(err, &oe) && oe.Status == http.StatusTooManyRequests:
			if oe.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(oe.RetryAfter))
			}
			s.renderLogin(w, r, http.StatusTooManyRequests, az, auth, username, "Too many sign-in attempts. Wait a moment and try again.")
		case errors.As(err, &oe) && oe.Status >= 500:
			s.log.LogAttrs(ctx, slog.LevelWarn, "sign-in unavailable", slog.String("cause", err.Error()))
			s.renderLogin(w, r, http.StatusServiceUnavailable, az, auth, username, "Sign-in is busy right now. Try again in a moment.")
		default:
			s.renderLogin(w, r, http.StatusUnauthorized, az, auth, username, "Incorrect email or password.")
		}
		return
	}
	s.runLate(ctx, st.late) // the throttling release (no group commit here)
	if u.MustChangePassword {
		s.startPasswordChange(w, r, az, auth, u)
		return
	}
	s.signedIn(w, r, u, auth)
}

// signedIn starts the session of u, whose credentials were just verified,
// and continues the pending authorization request auth, if any.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, u storage.User, auth string) {
	ctx := r.Context()
	if _, err := s.startSession(ctx, w, r, u); err != nil {
		s.unavailablePage(w, r, "could not start a session", err)
		return
	}
	s.metrics.signIns.Inc()
	s.audit(ctx, "signed_in", slog.String("sub", u.ID))
	if uc, ok := deviceSignIn(r); ok && auth == "" {
		seeOther(w, s.path("/device?"+url.Values{fieldUserCode: {uc}}.Encode()))
		return
	}
	if auth == "" {
		s.pages.Render(w, http.StatusOK, ui.PageMessage, ui.Message{Title: "Signed in", Text: "You are signed in as " + u.Email + "."})
		return
	}
	seeOther(w, s.path("/consent?"+url.Values{fieldAuth: {auth}}.Encode()))
}

func limitString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// handleConsent continues a pending request (GET) and takes the user's
// decision (POST).
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		auth := r.URL.Query().Get(fieldAuth)
		az, aerr := s.loadPending(ctx, auth)
		if aerr != nil {
			s.authorizeFailed(w, r, az, aerr)
			return
		}
		s.proceed(w, r, az, auth)
		return
	}
	form := readPageForm(w, r)
	if form == nil {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "The form could not be read.")
		return
	}
	auth := form.Get(fieldAuth)
	az, aerr := s.loadPending(ctx, auth)
	if aerr != nil {
		s.authorizeFailed(w, r, az, aerr)
		return
	}
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.unavailablePage(w, r, "reading the browser session failed", err)
		return
	}
	if bs == nil {
		seeOther(w, s.path("/login?"+url.Values{fieldAuth: {auth}}.Encode()))
		return
	}
	if !s.csrf.Valid(form.Get(fieldCSRF), "consent", bs.id, auth) {
		s.csrfRejected(ctx, w, "consent")
		return
	}
	switch form.Get("decision") {
	case "deny":
		if !s.consumePending(w, r, auth) {
			return
		}
		s.audit(ctx, "consent_denied", slog.String("client_id", az.client.ID), slog.String("sub", bs.user.ID))
		s.redirectToClient(w, az, url.Values{"error": {errAccessDenied}, "error_description": {"The user denied the request."}})
	case "allow":
		if err := s.saveConsent(ctx, bs.user.ID, az); err != nil {
			s.unavailablePage(w, r, "could not store a consent", err)
			return
		}
		if !s.consumePending(w, r, auth) {
			return
		}
		s.audit(ctx, "consent_granted", slog.String("client_id", az.client.ID), slog.String("sub", bs.user.ID))
		s.issueCode(w, r, az, bs)
	default:
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "Choose Allow or Deny.")
	}
}

// renderConsent shows the consent page for a pending request.
func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, az *authzRequest, bs *browserSession, auth string) {
	d := ui.Consent{
		ClientName: clientDisplayName(az.client),
		ClientID:   az.client.ID,
		UserName:   bs.user.Email,
		Action:     s.path("/consent"),
		Hidden:     []ui.Field{{Name: fieldAuth, Value: auth}},
		CSRF:       s.csrf.Token("consent", bs.id, auth),
	}
	for _, sc := range consentScopes(az) {
		d.Scopes = append(d.Scopes, ui.Scope{Name: sc, Description: scopeDescriptions[sc]})
	}
	s.pages.Render(w, http.StatusOK, ui.PageConsent, d, formTarget(az.redirectURI))
}

// scopeDescriptions explain the well-known scopes on the consent page.
var scopeDescriptions = map[string]string{
	"openid":         "confirm who you are",
	"profile":        "see your name",
	"email":          "see your email address",
	"offline_access": "stay signed in when you are not using it",
}

// requestedScopes are the scopes a request asks for: without a scope
// parameter, the client's whole registered set.
func requestedScopes(az *authzRequest) []string {
	if len(az.scopes) > 0 {
		return az.scopes
	}
	return az.client.Scopes
}

// consentScopes are the scopes the user decides on: the requested ones and
// those whose claims the claims parameter requests (a claim of a scope the
// client is registered for is a request for that scope; oidcParams.claims
// holds no others).
func consentScopes(az *authzRequest) []string {
	out := slices.Clone(requestedScopes(az))
	for _, sc := range az.oidc.claims.scopes() {
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// consentPayload is the stored form of a consent.
type consentPayload struct {
	Scopes []string `json:"scopes"`
}

// consentLifetime keeps a consent until it is revoked.
const consentLifetime = 100 * 365 * 24 * time.Hour

func consentKey(userID, clientID string) string { return hashHandle(userID + "\x00" + clientID) }

// needsConsent reports whether the user must be asked: not for a
// first-party client, nor when a remembered consent covers the scopes
// (consentScopes) of a confidential client. A public client is always
// asked (unless it is first-party): anyone can listen on a loopback port or
// claim a private-use scheme, so its identity is not assured and a
// remembered consent would hand codes to an impersonator without the user
// doing anything (RFC 8252 §8.6, RFC 6749 §10.2).
func (s *Server) needsConsent(ctx context.Context, userID string, az *authzRequest) (bool, error) {
	if az.client.SkipConsent {
		return false, nil
	}
	if az.client.Public {
		return true, nil
	}
	have, err := s.consentedScopes(ctx, userID, az.client.ID)
	if err != nil || have == nil {
		return true, err
	}
	for _, sc := range consentScopes(az) {
		if !slices.Contains(have, sc) {
			return true, nil
		}
	}
	return false, nil
}

// consentedScopes returns the scopes the user consented to for the client,
// or nil when there is no consent.
func (s *Server) consentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	t, err := s.store.GetToken(ctx, storage.Consent, consentKey(userID, clientID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p consentPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, fmt.Errorf("authserver: decode consent: %w", err)
	}
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	return p.Scopes, nil
}

// saveConsent remembers the user's consent to the request's scopes
// (consentScopes), added to what was consented before.
func (s *Server) saveConsent(ctx context.Context, userID string, az *authzRequest) error {
	have, err := s.consentedScopes(ctx, userID, az.client.ID)
	if err != nil {
		return err
	}
	scopes := slices.Clone(have)
	for _, sc := range consentScopes(az) {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	b, err := json.Marshal(consentPayload{Scopes: scopes})
	if err != nil {
		return fmt.Errorf("authserver: encode consent: %w", err)
	}
	key := consentKey(userID, az.client.ID)
	if have != nil {
		if err := s.store.DeleteToken(ctx, storage.Consent, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	now := s.cfg.Now().UTC()
	err = s.store.CreateToken(ctx, storage.Token{Kind: storage.Consent, Signature: key, RequestID: key, Subject: userID,
		ClientID: az.client.ID, Active: true, RequestedAt: now, ExpiresAt: now.Add(consentLifetime), Payload: b})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil // a concurrent consent of the same user won
	}
	return err
}

// handleLogout shows the sign-out confirmation (GET) and signs out (POST).
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.unavailablePage(w, r, "reading the browser session failed", err)
		return
	}
	if r.Method != http.MethodPost {
		if bs == nil {
			s.pages.Render(w, http.StatusOK, ui.PageMessage, ui.Message{Title: "Signed out", Text: "You are not signed in."})
			return
		}
		s.pages.Render(w, http.StatusOK, ui.PageLogout, ui.Logout{UserName: bs.user.Email, Action: s.path("/logout"),
			CSRF: s.csrf.Token("logout", bs.id)})
		return
	}
	form := readPageForm(w, r)
	if bs != nil && (form == nil || !s.csrf.Valid(form.Get(fieldCSRF), "logout", bs.id)) {
		s.csrfRejected(ctx, w, "logout")
		return
	}
	if err := s.endSession(ctx, w, r); err != nil {
		s.unavailablePage(w, r, "ending the session failed", err)
		return
	}
	if bs != nil {
		s.sessionEnded(ctx, bs.sid, bs.user.ID, "")
	}
	s.pages.Render(w, http.StatusOK, ui.PageMessage, ui.Message{Title: "Signed out", Text: "You have been signed out."})
}

// Consent is a user's remembered consent to a client.
type Consent struct {
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
}

// ConsentStore is the storage ListConsents and RevokeConsents need.
type ConsentStore interface {
	ListClients(ctx context.Context) ([]storage.Client, error)
	GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.Token, error)
	DeleteToken(ctx context.Context, kind storage.TokenKind, signature string) error
}

// ListConsents returns the consents the user gave, by client.
func ListConsents(ctx context.Context, st ConsentStore, userID string) ([]Consent, error) {
	clients, err := st.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	out := []Consent{}
	for _, c := range clients {
		t, err := st.GetToken(ctx, storage.Consent, consentKey(userID, c.ID))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var p consentPayload
		if err := json.Unmarshal(t.Payload, &p); err != nil {
			return nil, fmt.Errorf("authserver: decode consent: %w", err)
		}
		out = append(out, Consent{ClientID: c.ID, Scopes: p.Scopes, GrantedAt: t.RequestedAt})
	}
	return out, nil
}

// RevokeConsents forgets the user's consent to clientID, or to every client
// when clientID is empty; the user is asked again next time. It returns how
// many consents were revoked. Tokens already issued are not touched (see
// `tokens revoke`).
func RevokeConsents(ctx context.Context, st ConsentStore, userID, clientID string) (int, error) {
	ids := []string{clientID}
	if clientID == "" {
		cs, err := st.ListClients(ctx)
		if err != nil {
			return 0, err
		}
		ids = ids[:0]
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
	}
	n := 0
	for _, id := range ids {
		err := st.DeleteToken(ctx, storage.Consent, consentKey(userID, id))
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

// csrfRejected answers a page form whose CSRF token does not check (form
// names it in the audit log): 403 with a page that says what to do.
func (s *Server) csrfRejected(ctx context.Context, w http.ResponseWriter, form string) {
	s.audit(ctx, "csrf_rejected", slog.String("form", form))
	s.errorPage(w, http.StatusForbidden, errInvalidRequest, "This form has expired or was not sent from this site. Go back, reload the page and try again.")
}
