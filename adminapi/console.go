package adminapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// ConsoleConfig configures the web console at /admin/ui.
type ConsoleConfig struct {
	// Issuer is the public URL of the server, where the browser signs in.
	Issuer string
	// ClientID is the console's client: public, authorization_code, with
	// RedirectURI registered and SkipConsent (see ConsoleClient).
	ClientID string
	// RedirectURI is the console's callback, {admin URL}/admin/ui/callback.
	RedirectURI string
	// TokenEndpoint exchanges the code in-process: the server's public
	// handler (authserver.Server.Handler).
	TokenEndpoint http.Handler
	// Metrics feeds the dashboard's charts; nil draws none.
	Metrics *MetricsRing
	// SecureCookies marks the session cookie Secure (an https admin URL).
	SecureCookies bool
}

// ConsoleRole is the role a user needs to use the console.
const ConsoleRole = "admin"

// consoleScope is the one scope the console's client asks for.
const consoleScope = "admin-console"

// ConsoleClient is the registration of the console's client for
// redirectURI.
func ConsoleClient(id, redirectURI string, now time.Time) storage.Client {
	return storage.Client{ID: id, Name: "Admin console", Public: true, GrantTypes: []string{"authorization_code"},
		Scopes: []string{consoleScope}, RedirectURIs: []string{redirectURI}, SkipConsent: true, CreatedAt: now, UpdatedAt: now}
}

// consoleSession is a signed-in console user.
type consoleSession struct {
	sub, email, csrf string
	expires          time.Time
}

// pendingLogin is a sign-in in progress: its PKCE verifier, by state.
type pendingLogin struct {
	verifier string
	expires  time.Time
}

const (
	sessionCookie = "__Host-admin_console"
	plainCookie   = "admin_console"
	stateCookie   = "admin_console_state"
	sessionTTL    = 8 * time.Hour
)

// console is the web console.
type console struct {
	api      *API
	cfg      ConsoleConfig
	mu       sync.Mutex
	sessions map[string]consoleSession
	pending  map[string]pendingLogin
}

// WithConsole serves the web console at /admin/ui on the API's handler.
func (a *API) WithConsole(cfg ConsoleConfig) {
	a.console = &console{api: a, cfg: cfg, sessions: map[string]consoleSession{}, pending: map[string]pendingLogin{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *console) cookieName() string {
	if c.cfg.SecureCookies {
		return sessionCookie
	}
	return plainCookie
}

// routes mounts the console on r.
func (c *console) routes(r *mux.Router) {
	h := func(path string, fn func(http.ResponseWriter, *http.Request, consoleSession) error, methods ...string) {
		r.Handle(path, c.page(fn)).Methods(methods...)
	}
	r.Handle("/admin/ui/login", c.headers(http.HandlerFunc(c.login))).Methods(http.MethodGet)
	r.Handle("/admin/ui/callback", c.headers(http.HandlerFunc(c.callback))).Methods(http.MethodGet)
	h("/admin/ui", c.dashboard, http.MethodGet)
	h("/admin/ui/", c.dashboard, http.MethodGet)
	h("/admin/ui/users", c.users, http.MethodGet)
	h("/admin/ui/users/{id}/{action:disable|enable}", c.userAction, http.MethodPost)
	h("/admin/ui/sessions", c.sessionsPage, http.MethodGet)
	h("/admin/ui/users/{id}/sessions/revoke", c.revokeSessions, http.MethodPost)
	h("/admin/ui/users/{id}/consents/revoke", c.revokeConsent, http.MethodPost)
	h("/admin/ui/clients", c.clients, http.MethodGet, http.MethodPost)
	h("/admin/ui/keys", c.keys, http.MethodGet, http.MethodPost)
	h("/admin/ui/audit", c.audit, http.MethodGet)
	h("/admin/ui/logout", c.logout, http.MethodPost)
}

// headers: no framing, no caching, a strict CSP (no script at all).
func (c *console) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "+c.cfg.Issuer+"; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// page requires a session (else sends the browser to sign in) and, on
// POST, a valid CSRF token and a same-origin request.
func (c *console) page(fn func(http.ResponseWriter, *http.Request, consoleSession) error) http.Handler {
	return c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			if r.Method != http.MethodGet {
				c.errorPage(w, http.StatusForbidden, "Sign in first.")
				return
			}
			http.Redirect(w, r, "/admin/ui/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameOrigin(o, c.cfg.RedirectURI) {
				c.errorPage(w, http.StatusForbidden, "Cross-origin request refused.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				c.errorPage(w, http.StatusForbidden, "Invalid or missing CSRF token: reload the page and try again.")
				return
			}
		}
		ctx := r.Context()
		r = r.WithContext(contextWithActor(ctx, actor{clientID: c.cfg.ClientID, subject: s.sub}))
		if err := fn(w, r, s); err != nil {
			var ae *apiError
			switch {
			case errors.As(err, &ae):
				c.errorPage(w, ae.status, ae.detail)
			case errors.Is(err, storage.ErrNotFound):
				c.errorPage(w, http.StatusNotFound, "No such user or client.")
			case errors.Is(err, storage.ErrInvalidText):
				c.errorPage(w, http.StatusBadRequest, "A value holds a NUL byte or is not valid UTF-8.")
			default:
				c.api.log.ErrorContext(ctx, "admin console request failed", "path", r.URL.Path, "err", err)
				c.errorPage(w, http.StatusInternalServerError, "Internal error.")
			}
		}
	}))
}

func sameOrigin(origin, ref string) bool {
	u, err := url.Parse(ref)
	return err == nil && strings.EqualFold(origin, u.Scheme+"://"+u.Host)
}

func (c *console) session(r *http.Request) (consoleSession, bool) {
	ck, err := r.Cookie(c.cookieName())
	if err != nil {
		return consoleSession{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[hashKey(ck.Value)]
	if !ok || time.Now().After(s.expires) {
		delete(c.sessions, hashKey(ck.Value))
		return consoleSession{}, false
	}
	return s, true
}

func hashKey(v string) string {
	h := sha256.Sum256([]byte(v))
	return string(h[:])
}

// login starts the authorization code flow with PKCE at the public
// listener's sign-in page.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	state, verifier := randomToken(), randomToken()
	sum := sha256.Sum256([]byte(verifier))
	c.mu.Lock()
	now := time.Now()
	for k, p := range c.pending {
		if now.After(p.expires) {
			delete(c.pending, k)
		}
	}
	if len(c.pending) > 10000 {
		c.mu.Unlock()
		c.errorPage(w, http.StatusServiceUnavailable, "Too many sign-ins in progress; try again later.")
		return
	}
	c.pending[state] = pendingLogin{verifier: verifier, expires: now.Add(15 * time.Minute)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: "/admin/ui/callback", HttpOnly: true, Secure: c.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode, MaxAge: 900})
	q := url.Values{"response_type": {"code"}, "client_id": {c.cfg.ClientID}, "redirect_uri": {c.cfg.RedirectURI},
		"scope": {consoleScope}, "state": {state}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}}
	http.Redirect(w, r, c.cfg.Issuer+"/authorize?"+q.Encode(), http.StatusSeeOther)
}

// callback exchanges the code, verifies the access token as the API does
// and admits a user with the admin role.
func (c *console) callback(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	ck, err := r.Cookie(stateCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		c.errorPage(w, http.StatusBadRequest, "Sign-in state mismatch; start again.")
		return
	}
	c.mu.Lock()
	p, ok := c.pending[state]
	delete(c.pending, state)
	c.mu.Unlock()
	code := r.URL.Query().Get("code")
	if !ok || time.Now().After(p.expires) || code == "" {
		c.errorPage(w, http.StatusBadRequest, "Sign-in expired or refused; start again.")
		return
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.cfg.RedirectURI},
		"client_id": {c.cfg.ClientID}, "code_verifier": {p.verifier}}
	req := httptest.NewRequestWithContext(r.Context(), http.MethodPost, "/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = r.RemoteAddr
	rec := httptest.NewRecorder()
	c.cfg.TokenEndpoint.ServeHTTP(rec, req)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &tr) != nil || tr.AccessToken == "" {
		c.errorPage(w, http.StatusBadRequest, "The code exchange failed; start again.")
		return
	}
	claims, err := c.api.verify(r.Context(), tr.AccessToken)
	if err != nil || !slices.Contains(claims.Roles, ConsoleRole) {
		c.api.audit(r.WithContext(contextWithActor(r.Context(), actor{clientID: c.cfg.ClientID, subject: claimsSub(claims)})), "console sign-in", claimsSub(claims), errors.New("refused"))
		c.errorPage(w, http.StatusForbidden, "This account may not use the admin console.")
		return
	}
	sid := randomToken()
	c.mu.Lock()
	c.sessions[hashKey(sid)] = consoleSession{sub: claims.Subject, email: claims.Email, csrf: randomToken(), expires: time.Now().Add(sessionTTL)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Path: "/admin/ui/callback", MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: sid, Path: "/", HttpOnly: true, Secure: c.cfg.SecureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL.Seconds())})
	http.Redirect(w, r, "/admin/ui/", http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, _ consoleSession) error {
	if ck, err := r.Cookie(c.cookieName()); err == nil {
		c.mu.Lock()
		delete(c.sessions, hashKey(ck.Value))
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.cfg.SecureCookies})
	http.Redirect(w, r, "/admin/ui/login", http.StatusSeeOther)
	return nil
}

// render writes the named page.
func (c *console) render(w http.ResponseWriter, s consoleSession, name string, data map[string]any) error {
	data["Me"] = s.email
	data["Page"] = name
	data["CSRF"] = s.csrf
	var buf bytes.Buffer
	if err := consoleTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("adminapi: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := buf.WriteTo(w)
	return err
}

// errorPage writes a page with the status and a message for people; it
// has no navigation, as the browser may not be signed in.
func (c *console) errorPage(w http.ResponseWriter, status int, msg string) {
	var buf bytes.Buffer
	if err := consoleTemplates.ExecuteTemplate(&buf, "error", map[string]any{"Page": http.StatusText(status), "Status": status, "Message": msg}); err != nil {
		http.Error(w, msg, status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// chart is one inline SVG bar chart.
type chart struct {
	Title string
	Total float64
	Max   float64
	Bars  []bar
}

type bar struct{ X, Y, H, V float64 }

func (c *console) dashboard(w http.ResponseWriter, _ *http.Request, s consoleSession) error {
	var charts []chart
	if c.cfg.Metrics != nil {
		for i, series := range c.cfg.Metrics.window(time.Now()) {
			ch := chart{Title: chartSeries[i].Title, Max: 1}
			for _, v := range series {
				ch.Total += v
				ch.Max = max(ch.Max, v)
			}
			for k, v := range series {
				h := 50 * v / ch.Max
				ch.Bars = append(ch.Bars, bar{X: float64(k) * 5, Y: 50 - h, H: h, V: v})
			}
			charts = append(charts, ch)
		}
	}
	return c.render(w, s, "dashboard", map[string]any{"Charts": charts})
}

func (c *console) users(w http.ResponseWriter, r *http.Request, s consoleSession) error {
	q := r.URL.Query()
	var us []storage.User
	var err error
	if email := strings.TrimSpace(q.Get("email")); email != "" {
		u, gerr := c.api.cfg.Store.GetUserByEmail(r.Context(), email)
		if gerr == nil {
			us = []storage.User{u}
		} else if !errors.Is(gerr, storage.ErrNotFound) {
			return gerr
		}
	}
	after := ""
	if cur := q.Get("cursor"); cur != "" {
		b, derr := base64.RawURLEncoding.DecodeString(cur)
		if derr != nil {
			return problem(http.StatusBadRequest, "invalid cursor")
		}
		after = string(b)
	}
	p := paginate(us, func(u storage.User) string { return u.ID }, viewUser, defaultLimit, after)
	if strings.TrimSpace(q.Get("email")) == "" {
		// One page from the store's index, not every user.
		if p, err = c.api.userPage(r.Context(), storage.UserQuery{After: after, Limit: defaultLimit}); err != nil {
			return err
		}
	}
	return c.render(w, s, "users", map[string]any{"Users": p.Items, "Next": p.NextCursor, "Email": q.Get("email")})
}

func (c *console) userAction(w http.ResponseWriter, r *http.Request, _ consoleSession) (err error) {
	id, action := mux.Vars(r)["id"], mux.Vars(r)["action"]
	defer func() { c.api.audit(r, "users "+action, id, err, slog.String("via_console", "yes")) }()
	disable := action == "disable"
	u, err := c.api.cfg.Store.UpdateUser(r.Context(), id, func(u storage.User) (storage.User, error) {
		if u.Disabled != disable {
			u.Disabled = disable
			u.UpdatedAt = c.api.cfg.Now().UTC()
		}
		return u, nil
	})
	if err != nil {
		return err
	}
	if disable {
		if _, err := c.api.revokeAll(r.Context(), u.ID); err != nil {
			return err
		}
	}
	http.Redirect(w, r, "/admin/ui/users?email="+url.QueryEscape(u.Email), http.StatusSeeOther)
	return nil
}

func (c *console) clients(w http.ResponseWriter, r *http.Request, s consoleSession) (err error) {
	data := map[string]any{}
	if r.Method == http.MethodPost {
		cl := storage.Client{ID: strings.TrimSpace(r.PostFormValue("id")), Name: r.PostFormValue("name"),
			GrantTypes: strings.Fields(r.PostFormValue("grants")), Scopes: strings.Fields(r.PostFormValue("scopes"))}
		defer func() { c.api.audit(r, "clients create", cl.ID, err, slog.String("via_console", "yes")) }()
		if verr := validateClient(cl); verr != nil {
			var ae *apiError
			if errors.As(verr, &ae) {
				data["Error"] = ae.detail
			}
		} else {
			secret, gerr := password.GenerateSecret()
			if gerr != nil {
				return gerr
			}
			cl.SecretHashes = []string{password.HashSecret(secret)}
			cl.CreatedAt = c.api.cfg.Now().UTC()
			cl.UpdatedAt = cl.CreatedAt
			if ferr := authserver.ClientIDFree(r.Context(), c.api.cfg.Store, cl.ID); errors.Is(ferr, authserver.ErrClientIDIsUser) {
				data["Error"] = fmt.Sprintf("client ID %q is a user's ID; choose another", cl.ID)
			} else if ferr != nil {
				return ferr
			} else if cerr := c.api.cfg.Store.CreateClient(r.Context(), cl); errors.Is(cerr, storage.ErrAlreadyExists) {
				data["Error"] = fmt.Sprintf("client %q already exists", cl.ID)
			} else if cerr != nil {
				return cerr
			} else {
				data["Created"], data["Secret"] = cl.ID, secret
			}
		}
	}
	cs, err := c.api.cfg.Store.ListClients(r.Context())
	if err != nil {
		return err
	}
	views := make([]Client, 0, len(cs))
	for _, cl := range cs {
		views = append(views, viewClient(cl))
	}
	data["Clients"] = views
	return c.render(w, s, "clients", data)
}

func (c *console) keys(w http.ResponseWriter, r *http.Request, s consoleSession) (err error) {
	if r.Method == http.MethodPost {
		now := r.PostFormValue("now") == "on"
		defer func() {
			c.api.audit(r, "keys rotate", "", err, slog.Bool("now", now), slog.String("via_console", "yes"))
		}()
		if err := c.api.cfg.Keys.Rotate(r.Context(), now); err != nil {
			return err
		}
		http.Redirect(w, r, "/admin/ui/keys", http.StatusSeeOther)
		return nil
	}
	return c.render(w, s, "keys", map[string]any{"Keys": viewKeys(c.api.cfg.Keys.List()).Items})
}

func (c *console) audit(w http.ResponseWriter, r *http.Request, s consoleSession) error {
	var events []map[string]any
	if c.api.cfg.Ring != nil {
		match := map[string]string{}
		if e := r.URL.Query().Get("event"); e != "" {
			match["event"] = e
		}
		for _, raw := range c.api.cfg.Ring.Last(200, match) {
			var m map[string]any
			if json.Unmarshal(raw, &m) == nil {
				events = append(events, m)
			}
		}
	}
	return c.render(w, s, "audit", map[string]any{"Events": events, "Event": r.URL.Query().Get("event")})
}

// sessionsPage shows a user's consents (each with a revoke button) and a
// button that ends every browser session at once (the admin API also lists
// and ends them one by one); no cookie value or hash is shown.
func (c *console) sessionsPage(w http.ResponseWriter, r *http.Request, s consoleSession) error {
	q := r.URL.Query()
	data := map[string]any{"Email": q.Get("email"), "Done": q.Get("done")}
	email := strings.TrimSpace(q.Get("email"))
	if email == "" {
		return c.render(w, s, "sessions", data)
	}
	u, err := c.api.cfg.Store.GetUserByEmail(r.Context(), email)
	if errors.Is(err, storage.ErrNotFound) {
		data["Error"] = fmt.Sprintf("no user with the email %q", email)
		return c.render(w, s, "sessions", data)
	}
	if err != nil {
		return err
	}
	consents, err := authserver.ListConsents(r.Context(), c.api.cfg.Store, u.ID)
	if err != nil {
		return err
	}
	data["User"], data["Consents"] = viewUser(u), consents
	return c.render(w, s, "sessions", data)
}

// revokeSessions ends every browser session of the user and revokes every
// token (and remembered consent) with the user as subject, as DELETE
// /admin/v1/users/{id}/sessions does.
func (c *console) revokeSessions(w http.ResponseWriter, r *http.Request, _ consoleSession) (err error) {
	id := mux.Vars(r)["id"]
	defer func() { c.api.audit(r, "users revoke-sessions", id, err, slog.String("via_console", "yes")) }()
	u, _, err := c.api.revokeUserSessions(r.Context(), id)
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/ui/sessions?done=sessions&email="+url.QueryEscape(u.Email), http.StatusSeeOther)
	return nil
}

// revokeConsent forgets the user's consent to the form's client_id: the
// user is asked again next time. Tokens already issued are not touched.
func (c *console) revokeConsent(w http.ResponseWriter, r *http.Request, _ consoleSession) (err error) {
	id, client := mux.Vars(r)["id"], strings.TrimSpace(r.PostFormValue("client_id"))
	defer func() {
		c.api.audit(r, "users revoke-consent", strings.TrimSpace(id+" "+client), err, slog.String("via_console", "yes"))
	}()
	if client == "" {
		return problem(http.StatusBadRequest, "Choose a client.")
	}
	u, err := c.api.cfg.Store.GetUser(r.Context(), id)
	if err != nil {
		return err
	}
	n, err := authserver.RevokeConsents(r.Context(), c.api.cfg.Store, u.ID, client)
	if err != nil {
		return err
	}
	if n == 0 {
		return problem(http.StatusNotFound, "The user has no remembered consent to this client.")
	}
	http.Redirect(w, r, "/admin/ui/sessions?done=consent&email="+url.QueryEscape(u.Email), http.StatusSeeOther)
	return nil
}
