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
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/authserver/ui"
	"github.com/oauthkit/authserver/storage"
)

// The authorization endpoint (RFC 6749 §3.1, §4.1) with PKCE (RFC 7636),
// resource indicators (RFC 8707), pushed requests (RFC 9126) and the issuer
// in every response (RFC 9207).
//
// A request is validated here before fosite sees it, so that every error is
// either an error page (the client or the redirect URI cannot be trusted,
// RFC 6749 §4.1.2.1) or a redirect with error, error_description, state and
// iss. A request that needs the user (sign-in, consent) is stored as a
// pending authorization request and continued by the pages in login.go and
// consent.go; fosite's authorize-code and PKCE handlers issue the code.

// Protocol values of the authorization endpoint.
const (
	grantAuthorizationCode = "authorization_code"
	responseTypeCode       = "code"
	pkceS256               = "S256"
	requestURIPrefix       = "urn:ietf:params:oauth:request_uri:"

	errInvalidRequestURI       = "invalid_request_uri"
	errRequestNotSupported     = "request_not_supported"
	errRequestURINotSupported  = "request_uri_not_supported"
	errUnsupportedResponseType = "unsupported_response_type"
	errAccessDenied            = "access_denied"
	errInvalidTarget           = "invalid_target"

	// maxAuthorizeParam bounds each parameter of an authorization request,
	// maxAuthorizeQuery the whole query string.
	maxAuthorizeParam = 2048
	maxAuthorizeQuery = 16 << 10
)

// codeChallengeRE is an S256 code challenge: the unpadded base64url form of
// a SHA-256 digest (RFC 7636 §4.2).
var codeChallengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// authzRequest is a validated authorization request.
type authzRequest struct {
	// form holds the request's parameters; for a pushed request, those that
	// were pushed (request_uri resolved and removed).
	form        url.Values
	client      storage.Client
	redirectURI string
	state       string
	scopes      []string
	resources   []string
	viaPAR      bool
	oidc        oidcParams
}

// authzError is a refused authorization request. When redirect is false the
// user sees an error page and is never redirected.
type authzError struct {
	code, desc string
	redirect   bool
	status     int
	cause      error
}

func (e *authzError) Error() string { return e.code + ": " + e.desc }

func pageError(code, desc string) *authzError {
	return &authzError{code: code, desc: desc, status: http.StatusBadRequest}
}

func redirectError(code, desc string) *authzError {
	return &authzError{code: code, desc: desc, redirect: true, status: http.StatusBadRequest}
}

// handleAuthorize serves GET and POST /authorize.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	form, aerr := s.authorizeParams(w, r)
	if aerr != nil {
		s.authorizeFailed(w, r, nil, aerr)
		return
	}
	az, aerr := s.validateAuthorize(r.Context(), form, false, false)
	if aerr != nil {
		s.authorizeFailed(w, r, az, aerr)
		return
	}
	if r.Method == http.MethodPost {
		// A cross-site POST carries no SameSite=Lax session cookie: continue
		// with a GET, which does, instead of asking a signed-in user to sign
		// in again.
		id, err := s.savePending(r, az)
		if err != nil {
			s.authorizeFailed(w, r, az, pendingError(err))
			return
		}
		seeOther(w, s.path("/consent?"+url.Values{"auth": {id}}.Encode()))
		return
	}
	s.proceed(w, r, az, "")
}

// authorizeParams reads the parameters of GET (query) or POST (form body)
// within the size limits.
func (s *Server) authorizeParams(w http.ResponseWriter, r *http.Request) (url.Values, *authzError) {
	var raw string
	switch r.Method {
	case http.MethodGet:
		raw = r.URL.RawQuery
	case http.MethodPost:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, pageError(errInvalidRequest, "The request body must be application/x-www-form-urlencoded.")
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAuthorizeQuery))
		if err != nil {
			return nil, pageError(errInvalidRequest, "The authorization request is too large or could not be read.")
		}
		raw = string(b)
	default:
		w.Header().Set("Allow", "GET, POST")
		return nil, &authzError{code: errInvalidRequest, desc: "The authorization endpoint accepts GET and POST.", status: http.StatusMethodNotAllowed}
	}
	if len(raw) > maxAuthorizeQuery {
		return nil, pageError(errInvalidRequest, "The authorization request is too large.")
	}
	form, err := url.ParseQuery(raw)
	if err != nil {
		return nil, pageError(errInvalidRequest, "The authorization request is not valid URL encoding.")
	}
	for k, vs := range form {
		for _, v := range vs {
			if len(v) > maxAuthorizeParam {
				return nil, pageError(errInvalidRequest, "A parameter of the authorization request is too long.")
			}
		}
		if !formText(k, vs) {
			return nil, pageError(errInvalidRequest, invalidTextDetail)
		}
	}
	return form, nil
}

// validateAuthorize checks an authorization request. pushed is true at the
// pushed authorization request endpoint, where the client is already
// authenticated and errors are JSON. viaPAR is true for a form that came
// from a pushed request already resolved (a pending request resumed). A
// request_uri of ours is resolved (and consumed) here.
func (s *Server) validateAuthorize(ctx context.Context, form url.Values, pushed, viaPAR bool) (*authzRequest, *authzError) {
	az := &authzRequest{form: form, viaPAR: viaPAR}
	for _, k := range []string{"client_id", "redirect_uri", "request_uri"} {
		if len(form[k]) > 1 {
			return az, pageError(errInvalidRequest, "The parameter '"+k+"' is repeated.")
		}
	}
	if ru := form.Get("request_uri"); !pushed && strings.HasPrefix(ru, requestURIPrefix) {
		pf, aerr := s.consumePushed(ctx, ru, form.Get("client_id"))
		if aerr != nil {
			return az, aerr
		}
		form, az.form, az.viaPAR = pf, pf, true
	}
	id := form.Get("client_id")
	if id == "" {
		return az, pageError(errInvalidRequest, "The client_id parameter is missing.")
	}
	c, err := s.clientRegistration(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return az, pageError(errInvalidClient, "The application is not registered with this server.")
	}
	if err != nil {
		return az, &authzError{code: errTemporarilyUnavailable, desc: genericUnavailableDetail, status: http.StatusServiceUnavailable, cause: err}
	}
	az.client = c
	ru, ok := matchRedirectURI(c.RedirectURIs, form.Get("redirect_uri"), form.Has("redirect_uri"))
	if !ok {
		return az, pageError(errInvalidRequest, "The redirect_uri is not registered for this application.")
	}
	az.redirectURI = ru
	az.state = form.Get("state")
	// From here on, errors are sent to the client's redirect URI.
	for k, v := range form {
		if len(v) > 1 && k != "resource" {
			return az, redirectError(errInvalidRequest, "The parameter '"+safeParam(k)+"' is repeated.")
		}
	}
	if form.Has("request") {
		return az, redirectError(errRequestNotSupported, "Request objects are not supported; use pushed authorization requests.")
	}
	if form.Has("request_uri") {
		if pushed {
			return az, redirectError(errInvalidRequest, "A pushed authorization request must not contain request_uri.")
		}
		return az, redirectError(errRequestURINotSupported, "Only request_uri values issued by the pushed authorization request endpoint are supported.")
	}
	switch rt := form.Get("response_type"); {
	case rt == "":
		return az, redirectError(errInvalidRequest, "The response_type parameter is missing.")
	case rt != responseTypeCode:
		return az, redirectError(errUnsupportedResponseType, "Only response_type=code is supported.")
	}
	if !slices.Contains(c.GrantTypes, grantAuthorizationCode) {
		return az, redirectError(errUnauthorizedClient, "The client is not allowed to use the authorization code grant.")
	}
	if c.RequirePAR && !az.viaPAR && !pushed {
		return az, redirectError(errInvalidRequest, "This client must send its authorization requests to the pushed authorization request endpoint.")
	}
	if rm := form.Get("response_mode"); rm != "" && rm != "query" {
		return az, redirectError(errInvalidRequest, "Only response_mode=query is supported.")
	}
	switch m := form.Get("code_challenge_method"); {
	case !form.Has("code_challenge"):
		return az, redirectError(errInvalidRequest, "PKCE is required: the code_challenge parameter is missing.")
	case m != pkceS256:
		return az, redirectError(errInvalidRequest, "The code_challenge_method must be S256.")
	case !codeChallengeRE.MatchString(form.Get("code_challenge")):
		return az, redirectError(errInvalidRequest, "The code_challenge must be the base64url-encoded SHA-256 of the code verifier (43 characters).")
	}
	az.scopes = strings.Fields(form.Get("scope"))
	for _, sc := range az.scopes {
		if !slices.Contains(c.Scopes, sc) {
			return az, redirectError(errInvalidScope, "The client is not allowed to request the scope '"+safeParam(sc)+"'.")
		}
	}
	res, oerr := s.resourcesFor(c, form["resource"], nil)
	if oerr != nil {
		return az, redirectError(oerr.Code, oerr.Description)
	}
	az.resources = res
	if aerr := s.validateOIDC(az, pushed); aerr != nil {
		return az, aerr
	}
	if aerr := validateDPoPJKT(form); aerr != nil {
		return az, aerr
	}
	return az, nil
}

// consumePushed resolves and consumes a request_uri: it is single-use.
func (s *Server) consumePushed(ctx context.Context, requestURI, clientID string) (url.Values, *authzError) {
	key := parKey(requestURI)
	t, err := s.store.GetToken(ctx, storage.PushedRequest, key)
	if err == nil && !t.ExpiresAt.After(s.cfg.Now()) {
		err = storage.ErrNotFound
	}
	if err == nil {
		// Deleting is the compare-and-swap that makes the URI single-use.
		err = s.store.DeleteToken(ctx, storage.PushedRequest, key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, pageError(errInvalidRequestURI, "The request_uri is unknown, expired or already used.")
	}
	if err != nil {
		return nil, &authzError{code: errTemporarilyUnavailable, desc: genericUnavailableDetail, status: http.StatusServiceUnavailable, cause: err}
	}
	if clientID == "" || clientID != t.ClientID {
		return nil, pageError(errInvalidRequest, "The client_id does not match the pushed authorization request.")
	}
	r, err := decodePayload(t.Payload, nil)
	if err != nil {
		return nil, &authzError{code: errServerError, desc: genericServerErrorDetail, status: http.StatusInternalServerError, cause: err}
	}
	return r.Form, nil
}

// matchRedirectURI picks the redirect URI of a request: an exact string
// match with a registered one (RFC 9700 §4.1.3), where only the port of a
// loopback URI may differ (RFC 8252 §7.3); without the parameter, the one
// registered URI if there is exactly one (RFC 6749 §3.1.2.3).
func matchRedirectURI(registered []string, requested string, present bool) (string, bool) {
	if !present {
		if len(registered) == 1 {
			return registered[0], true
		}
		return "", false
	}
	if slices.Contains(registered, requested) {
		return requested, true
	}
	if strings.ContainsAny(requested, "#@\\") {
		return "", false
	}
	want, ok := withoutLoopbackPort(requested)
	if !ok {
		return "", false
	}
	for _, reg := range registered {
		if got, ok := withoutLoopbackPort(reg); ok && got == want {
			return requested, true
		}
	}
	return "", false
}

// withoutLoopbackPort removes the port of a loopback redirect URI, compared
// as a string (RFC 9700 §2.1: exact matching but for the port of a loopback
// URI): http://127.0.0.1:51004/cb becomes http://127.0.0.1/cb. ok is false
// for any other URI.
func withoutLoopbackPort(raw string) (string, bool) {
	for _, prefix := range []string{"http://127.0.0.1", "http://[::1]"} {
		rest, found := strings.CutPrefix(raw, prefix)
		if !found {
			continue
		}
		if port, ok := strings.CutPrefix(rest, ":"); ok {
			n := 0
			for n < len(port) && port[n] >= '0' && port[n] <= '9' {
				n++
			}
			if n == 0 || n > 5 {
				return "", false
			}
			rest = port[n:]
		}
		if rest != "" && rest[0] != '/' && rest[0] != '?' {
			return "", false
		}
		return prefix + rest, true
	}
	return "", false
}

// isLoopbackLiteral reports whether host is 127.0.0.1 or ::1 (RFC 8252
// §7.3; "localhost" is not a loopback literal, §8.3).
func isLoopbackLiteral(host string) bool {
	return host == "127.0.0.1" || host == "::1"
}

// ValidateRedirectURI checks a redirect URI for registration: absolute, no
// fragment, and https unless it is a loopback URI (http://127.0.0.1 or
// http://[::1], RFC 8252 §7.3) or a private-use scheme such as
// com.example.app:/cb (RFC 8252 §7.1).
func ValidateRedirectURI(raw string) error {
	if raw == "" || strings.ContainsAny(raw, "# \t\r\n") {
		return fmt.Errorf("redirect URI %q: must be absolute, without a fragment or spaces", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" && !strings.Contains(u.Scheme, ".") {
		return fmt.Errorf("redirect URI %q: not an absolute URI", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("redirect URI %q: no host", raw)
		}
	case "http":
		if !isLoopbackLiteral(u.Hostname()) {
			return fmt.Errorf("redirect URI %q: plain http is allowed only on loopback (http://127.0.0.1 or http://[::1])", raw)
		}
	default:
		// A private-use scheme is a reversed domain name (RFC 8252 §7.1).
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Errorf("redirect URI %q: use https, a loopback http URI, or a private-use scheme in reverse-domain form", raw)
		}
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q: must not contain user information", raw)
	}
	return nil
}

// ValidateResource checks a resource indicator (RFC 8707 §2): an absolute
// URI without a fragment.
func ValidateResource(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("resource %q: must be an absolute URI without a fragment", raw)
	}
	return nil
}

// resourcesFor resolves the resource parameters of a request into the
// access token's audience (RFC 8707). Without any, the default audience.
// within, when not nil, is the set a request may narrow (a code exchange or
// a refresh may only keep audiences the grant already has).
func (s *Server) resourcesFor(c storage.Client, requested, within []string) ([]string, *oauthError) {
	if len(requested) == 0 {
		if within != nil {
			return within, nil
		}
		return []string{s.cfg.Audience}, nil
	}
	var out []string
	for _, r := range requested {
		if ValidateResource(r) != nil {
			return nil, newError(http.StatusBadRequest, errInvalidTarget, "The resource parameter must be an absolute URI without a fragment.")
		}
		allowed := r == s.cfg.Audience || slices.Contains(c.Resources, r)
		if within != nil {
			allowed = slices.Contains(within, r)
		}
		if !allowed {
			return nil, newError(http.StatusBadRequest, errInvalidTarget, "The requested resource is not allowed for this client.")
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// authorizeFailed answers a refused request: a redirect to the client when
// its redirect URI is trusted, an error page otherwise.
func (s *Server) authorizeFailed(w http.ResponseWriter, r *http.Request, az *authzRequest, e *authzError) {
	level := slog.LevelDebug
	if e.status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{slog.String("path", r.URL.Path), slog.String("error", e.code)}
	if e.cause != nil {
		attrs = append(attrs, slog.String("cause", e.cause.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "authorization request refused", attrs...)
	if e.redirect && az != nil && az.redirectURI != "" {
		v := url.Values{"error": {e.code}, "error_description": {e.desc}}
		s.redirectToClient(w, az, v)
		return
	}
	s.errorPage(w, e.status, e.code, e.desc)
}

// unavailablePage answers a page whose storage (or another dependency)
// failed: a 503 temporarily_unavailable page that says nothing of the cause,
// and a record of what failed, with the path and the cause, for the
// operator: at error level, or warning for a full hashing queue or a
// browser that went away.
func (s *Server) unavailablePage(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, storage.ErrInvalidText) {
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, invalidTextDetail)
		return
	}
	s.log.LogAttrs(r.Context(), failureLevel(err), what, slog.String("path", r.URL.Path), slog.String("cause", err.Error()))
	s.errorPage(w, http.StatusServiceUnavailable, errTemporarilyUnavailable, genericUnavailableDetail)
}

// errorPage shows an error to the user. desc is for people, never internals.
func (s *Server) errorPage(w http.ResponseWriter, status int, code, desc string) {
	title := "Something went wrong"
	if status < 500 {
		title = "This request cannot be completed"
	}
	s.pages.Render(w, status, ui.PageMessage, ui.Message{Title: title, Text: desc, Code: code})
}

// redirectToClient sends the authorization response (RFC 6749 §4.1.2) with
// state and iss (RFC 9207) added to params, keeping the redirect URI's own
// query.
func (s *Server) redirectToClient(w http.ResponseWriter, az *authzRequest, params url.Values) {
	if az.state != "" {
		params.Set("state", az.state)
	}
	params.Set("iss", s.cfg.Issuer)
	u := az.redirectURI
	if i := strings.IndexByte(u, '?'); i >= 0 && i < len(u)-1 {
		u += "&" + params.Encode()
	} else {
		u = strings.TrimSuffix(u, "?") + "?" + params.Encode()
	}
	noStore(w)
	w.Header().Set("Location", u)
	w.WriteHeader(http.StatusSeeOther)
}

// formTarget is the CSP form-action source of a redirect URI: the origin of
// an http(s) URI, the scheme of a private-use one.
func formTarget(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return ""
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":"
}

// proceed continues a validated request: sign-in, then consent, then the
// code. pendingID is the stored pending request it came from, if any.
func (s *Server) proceed(w http.ResponseWriter, r *http.Request, az *authzRequest, pendingID string) {
	ctx := r.Context()
	bs, err := s.currentSession(ctx, r)
	if err != nil {
		s.authorizeFailed(w, r, az, &authzError{code: errTemporarilyUnavailable, desc: genericUnavailableDetail, redirect: true, status: http.StatusServiceUnavailable, cause: err})
		return
	}
	if s.oidcGate(w, r, az, bs, pendingID) {
		return
	}
	if bs == nil {
		if pendingID == "" {
			if pendingID, err = s.savePending(r, az); err != nil {
				s.authorizeFailed(w, r, az, pendingError(err))
				return
			}
		}
		seeOther(w, s.path("/login?"+url.Values{"auth": {pendingID}}.Encode()))
		return
	}
	need, err := s.needsConsent(ctx, bs.user.ID, az)
	if err != nil {
		s.authorizeFailed(w, r, az, &authzError{code: errTemporarilyUnavailable, desc: genericUnavailableDetail, redirect: true, status: http.StatusServiceUnavailable, cause: err})
		return
	}
	need = need || az.oidc.has(promptConsent)
	if need && az.oidc.has(promptNone) {
		s.authorizeFailed(w, r, az, redirectError(errConsentRequired, "The user has not consented to this request."))
		return
	}
	if need {
		if pendingID == "" {
			if pendingID, err = s.savePending(r, az); err != nil {
				s.authorizeFailed(w, r, az, pendingError(err))
				return
			}
			seeOther(w, s.path("/consent?"+url.Values{"auth": {pendingID}}.Encode()))
			return
		}
		s.renderConsent(w, r, az, bs, pendingID)
		return
	}
	if pendingID != "" && !s.consumePending(w, r, pendingID) {
		return
	}
	s.issueCode(w, r, az, bs)
}

func seeOther(w http.ResponseWriter, location string) {
	noStore(w)
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}

// issueCode issues the authorization code with fosite's authorize-code and
// PKCE handlers and redirects to the client. The code and its PKCE record
// are committed together, in the group commit shared with concurrent
// requests.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, az *authzRequest, bs *browserSession) {
	// fosite insists on a state of 8 characters or more; state is
	// optional with PKCE (RFC 9700 §2.1.1) and we answer with az.state, so
	// fosite gets a placeholder (it is not stored with the code).
	form := cloneWithout(az.form, oidcHandledParams)
	form.Set("state", fositeStatePlaceholder)
	freq, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/authorize?"+form.Encode(), nil)
	if err != nil {
		s.authorizeFailed(w, r, az, &authzError{code: errServerError, desc: genericServerErrorDetail, redirect: true, status: http.StatusInternalServerError, cause: err})
		return
	}
	st := &requestState{ip: s.clientIP(r), client: &az.client, user: &bs.user}
	ctx := withState(r.Context(), st)
	ar, err := s.provider.NewAuthorizeRequest(ctx, freq)
	if err != nil {
		s.authorizeFailed(w, r, az, fositeAuthorizeError(err))
		return
	}
	sess := newSession()
	fillUserSession(sess, bs.user)
	sess.AuthTime = bs.authTime
	sess.SessionID = bs.sid
	sess.Resources = az.resources
	fillOIDCSession(sess, az)
	sess.CodeJKT = az.form.Get("dpop_jkt")
	scopes := az.scopes
	if len(scopes) == 0 {
		scopes = az.client.Scopes
	}
	for _, sc := range scopes {
		ar.GrantScope(sc)
	}
	for _, aud := range az.resources {
		ar.GrantAudience(aud)
	}
	st.buffer = true
	st.arrived = s.committer.expect()
	defer st.arrived()
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err == nil {
		err = s.flush(ctx, st)
	}
	st.arrived()
	if err != nil {
		s.authorizeFailed(w, r, az, fositeAuthorizeError(err))
		return
	}
	s.metrics.codes.Inc()
	s.rememberLogoutTarget(ctx, az, bs)
	s.audit(ctx, "code_issued", slog.String("client_id", az.client.ID), slog.String("sub", bs.user.ID))
	s.redirectToClient(w, az, url.Values{"code": {resp.GetCode()}})
}

// fositeStatePlaceholder stands in for the client's state inside fosite.
const fositeStatePlaceholder = "state-is-kept-by-authserver"

// fositeAuthorizeError maps a fosite error at the authorization endpoint;
// the redirect URI was validated before fosite ran, so it redirects.
func fositeAuthorizeError(err error) *authzError {
	oe := toOAuthError(err)
	var fe *fosite.RFC6749Error
	if errors.As(err, &fe) {
		switch fe.ErrorField {
		case errUnsupportedResponseType, errAccessDenied, errInvalidRequestURI, errRequestNotSupported, errRequestURINotSupported:
			oe = newError(http.StatusBadRequest, fe.ErrorField, oe.Description)
		}
	}
	return &authzError{code: oe.Code, desc: oe.Description, redirect: true, status: oe.Status, cause: err}
}

// authorizationParams are the parameters a pending request keeps (RFC 6749
// §4.1.1, RFC 7636, RFC 8707, OpenID Connect Core §3.1.2.1); anything else,
// such as a client secret put in a URL by mistake, is not stored.
var authorizationParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state",
	"code_challenge", "code_challenge_method", "resource", "response_mode", "nonce", "prompt", "max_age",
	"login_hint", "id_token_hint", "claims", "ui_locales", "claims_locales", "display", "acr_values", "dpop_jkt"}

// pendingPayload is the stored form of a pending authorization request.
type pendingPayload struct {
	Form   url.Values `json:"form"`
	ViaPAR bool       `json:"par,omitempty"`
	// LoginSID is oidcParams.loginSID.
	LoginSID string `json:"login_sid,omitempty"`
}

// pendingLimitError is savePending's error when the caller's address has
// left too many requests waiting (Config.PendingPerMinute).
type pendingLimitError struct{ wait time.Duration }

func (e pendingLimitError) Error() string {
	return fmt.Sprintf("authserver: too many pending authorization requests from one address (retry in %s)", e.wait)
}

// pendingError is the authorization error of a request that could not be
// stored to wait for the user: temporarily_unavailable (RFC 6749
// §4.1.2.1), redirected to the client, which saw the request validated.
func pendingError(err error) *authzError {
	var lim pendingLimitError
	if errors.As(err, &lim) {
		return &authzError{code: errTemporarilyUnavailable, redirect: true, status: http.StatusTooManyRequests,
			desc: "Too many sign-in requests from this address. Try again in " + seconds(retrySeconds(lim.wait)) + "."}
	}
	return &authzError{code: errTemporarilyUnavailable, desc: genericUnavailableDetail, redirect: true, status: http.StatusServiceUnavailable, cause: err}
}

// savePending stores a request that waits for the user, for LoginTTL, if
// the caller's address has not left too many waiting.
func (s *Server) savePending(r *http.Request, az *authzRequest) (string, error) {
	ctx := r.Context()
	if s.pendingLimiter != nil {
		if wait := s.pendingLimiter.take(limitKey(s.clientIP(r))); wait > 0 {
			s.metrics.throttled.WithLabelValues("authorize").Inc()
			s.audit(ctx, "authorize_throttled", slog.String("retry_after", retryAfter(wait)))
			return "", pendingLimitError{wait: wait}
		}
	}
	id, err := randomHandle()
	if err != nil {
		return "", err
	}
	form := url.Values{}
	for _, k := range authorizationParams {
		if v, ok := az.form[k]; ok {
			form[k] = v
		}
	}
	b, err := json.Marshal(pendingPayload{Form: form, ViaPAR: az.viaPAR, LoginSID: az.oidc.loginSID})
	if err != nil {
		return "", fmt.Errorf("authserver: encode pending request: %w", err)
	}
	now := s.cfg.Now().UTC()
	sig := hashHandle(id)
	err = s.store.CreateToken(ctx, storage.Token{Kind: storage.AuthorizeRequest, Signature: sig, RequestID: sig,
		ClientID: az.client.ID, Active: true, RequestedAt: now, ExpiresAt: now.Add(s.cfg.LoginTTL), Payload: b})
	if err != nil {
		return "", fmt.Errorf("authserver: store pending request: %w", err)
	}
	return id, nil
}

// loadPending revalidates a stored pending request. A missing or expired
// one is an error page: it can no longer be tied to a redirect URI.
func (s *Server) loadPending(ctx context.Context, id string) (*authzRequest, *authzError) {
	if id == "" || len(id) > 100 {
		return nil, pageError(errInvalidRequest, "The sign-in link is incomplete. Go back to the application and start again.")
	}
	t, err := s.store.GetToken(ctx, storage.AuthorizeRequest, hashHandle(id))
	if err == nil && !t.ExpiresAt.After(s.cfg.Now()) {
		err = storage.ErrNotFound
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, pageError(errInvalidRequest, "This sign-in request has expired or was already completed. Go back to the application and start again.")
	}
	if err != nil {
		return nil, &authzError{code: errTemporarilyUnavailable, desc: genericUnavailableDetail, status: http.StatusServiceUnavailable, cause: err}
	}
	var p pendingPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, &authzError{code: errServerError, desc: genericServerErrorDetail, status: http.StatusInternalServerError, cause: err}
	}
	az, aerr := s.validateAuthorize(ctx, p.Form, false, p.ViaPAR)
	if aerr != nil {
		return az, aerr
	}
	az.oidc.loginSID = p.LoginSID
	return az, nil
}

// consumePending deletes a pending request once it is answered. The
// deletion is the compare-and-swap that makes it single-use: of two
// concurrent answers (a double click, two tabs) only one goes on; the other
// gets an error page and false.
func (s *Server) consumePending(w http.ResponseWriter, r *http.Request, id string) bool {
	err := s.store.DeleteToken(r.Context(), storage.AuthorizeRequest, hashHandle(id))
	switch {
	case err == nil:
		return true
	case errors.Is(err, storage.ErrNotFound):
		s.errorPage(w, http.StatusBadRequest, errInvalidRequest, "This sign-in request was already completed. Go back to the application and start again.")
	default:
		s.unavailablePage(w, r, "could not complete a pending authorization request", err)
	}
	return false
}

// pendingTTLDefault is how long a user has to sign in and consent.
const pendingTTLDefault = 15 * time.Minute
