package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// OpenID Connect on top of the code flow (OpenID Connect Core 1.0). fosite's
// handler/openid explicit and refresh handlers issue the ID token; the
// request parameters (prompt, max_age, id_token_hint, claims, login_hint,
// display, ui_locales) are validated and acted on here, before fosite runs,
// as authorize.go does for OAuth. The ID token is always signed with an
// RS256 key (Core §15.1: RS256 must be supported), whatever the access
// tokens use.

// Protocol values of OpenID Connect.
const (
	scopeOpenID        = "openid"
	scopeProfile       = "profile"
	scopeEmail         = "email"
	scopeOfflineAccess = "offline_access"

	// Core §3.1.2.6 error codes.
	errLoginRequired   = "login_required"
	errConsentRequired = "consent_required"

	promptNone    = "none"
	promptLogin   = "login"
	promptConsent = "consent"

	// idTokenAlg signs every ID token.
	idTokenAlg = "RS256"
	// maxMaxAge bounds max_age (a year) so that it cannot overflow.
	maxMaxAge = 365 * 24 * 3600
)

// oidcScopes are advertised in scopes_supported whatever clients register.
var oidcScopes = []string{scopeOpenID, scopeProfile, scopeEmail, scopeOfflineAccess}

// scopeClaims are the claims each scope grants (Core §5.4). address and
// phone are not supported: users have neither.
var scopeClaims = map[string][]string{
	scopeProfile: {"name", "preferred_username", "updated_at"},
	scopeEmail:   {"email", "email_verified"},
}

// idTokenClaimNames are the claims of every ID token.
var idTokenClaimNames = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "amr", "sid"}

// supportedClaims lists claims_supported (Discovery §3).
func supportedClaims() []string {
	out := slices.Clone(idTokenClaimNames)
	for _, sc := range []string{scopeProfile, scopeEmail} {
		out = append(out, scopeClaims[sc]...)
	}
	return out
}

// oidcParams are the OpenID Connect parameters of a validated
// authorization request.
type oidcParams struct {
	prompt []string
	// maxAge is -1 without max_age.
	maxAge int64
	// hintSub is the subject of a valid id_token_hint.
	hintSub string
	// claims are the claims the claims parameter requests, only those of
	// scopes the client is registered for (claimsRequest.within).
	claims claimsRequest
	// claimsSub is the sub value the claims parameter requires, "" for
	// none; acrUnmet is claimsParam.acrUnmet.
	claimsSub string
	acrUnmet  bool
	// loginSID is set once the request sent the user to sign in: the sid
	// of the session it had then ("-" for none). A session with another sid
	// is a sign-in made for this request (prompt=login, max_age).
	loginSID string
}

func (p oidcParams) has(prompt string) bool { return slices.Contains(p.prompt, prompt) }

// namesUser reports whether the request names the user it is for: an
// id_token_hint, or a sub value in the claims parameter.
func (p oidcParams) namesUser() bool { return p.hintSub != "" || p.claimsSub != "" }

// namesOtherUser reports whether the request names a user whose subject
// (as the client sees it) is not sub (Core §3.1.2.1 id_token_hint, §5.5.1:
// no ID token or access token for a different user).
func (p oidcParams) namesOtherUser(sub string) bool {
	return (p.hintSub != "" && p.hintSub != sub) || (p.claimsSub != "" && p.claimsSub != sub)
}

// claimsRequest is the claims parameter (Core §5.5): the names of the
// claims requested for userinfo and for the ID token.
type claimsRequest struct {
	UserInfo []string `json:"userinfo,omitempty"`
	IDToken  []string `json:"id_token,omitempty"`
}

// scopes returns the scopes whose claims r requests (scopeClaims), each
// once, in the order of oidcScopes.
func (r claimsRequest) scopes() []string {
	var out []string
	for _, sc := range oidcScopes {
		for _, c := range scopeClaims[sc] {
			if slices.Contains(r.UserInfo, c) || slices.Contains(r.IDToken, c) {
				out = append(out, sc)
				break
			}
		}
	}
	return out
}

// within returns r without the claims of scopes not in allowed: a claim
// requested through the claims parameter is a request for its scope, which
// the client must be registered for (Core §3.1.2.4: no release without an
// authorization decision, and the decision is about scopes).
func (r claimsRequest) within(allowed []string) claimsRequest {
	keep := func(names []string) []string {
		var out []string
		for _, n := range names {
			if slices.Contains(allowed, claimScope(n)) {
				out = append(out, n)
			}
		}
		return out
	}
	return claimsRequest{UserInfo: keep(r.UserInfo), IDToken: keep(r.IDToken)}
}

// claimScope returns the scope that grants the claim, or "".
func claimScope(claim string) string {
	for sc, names := range scopeClaims {
		if slices.Contains(names, claim) {
			return sc
		}
	}
	return ""
}

// claimsParam is a parsed claims parameter: the claims it asks to release,
// and what its id_token member requires of the authentication.
type claimsParam struct {
	release claimsRequest
	// sub is the value the id_token member requires of sub (Core §5.5.1),
	// "" for none.
	sub string
	// acrUnmet is set when the id_token member asks for acr as an
	// Essential Claim with specific values (Core §5.5.1.1). This server
	// asserts no acr, so no authentication can meet it.
	acrUnmet bool
}

// claimSpec is a claim's request in the claims parameter (Core §5.5.1):
// null or an object.
type claimSpec struct {
	Essential bool              `json:"essential"`
	Value     json.RawMessage   `json:"value"`
	Values    []json.RawMessage `json:"values"`
}

// hasValue reports whether raw is present and not null.
func hasValue(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// parseClaimsParam reads the claims parameter. Members other than userinfo
// and id_token, and claims we do not have, are ignored (§5.5); of the
// id_token member, sub with a value and an essential acr are acted on
// (§5.5.1, §5.5.1.1). The error is the description of invalid_request.
func parseClaimsParam(raw string) (claimsParam, string) {
	const notObject = "The claims parameter must be a JSON object."
	var in struct {
		UserInfo map[string]json.RawMessage `json:"userinfo"`
		IDToken  map[string]json.RawMessage `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		return claimsParam{}, notObject
	}
	names := func(m map[string]json.RawMessage) []string {
		var out []string
		for _, sc := range []string{scopeProfile, scopeEmail} {
			for _, c := range scopeClaims[sc] {
				if _, ok := m[c]; ok {
					out = append(out, c)
				}
			}
		}
		return out
	}
	p := claimsParam{release: claimsRequest{UserInfo: names(in.UserInfo), IDToken: names(in.IDToken)}}
	spec := func(name string) (claimSpec, bool) {
		var cs claimSpec
		v, ok := in.IDToken[name]
		if !ok || !hasValue(v) {
			return cs, true
		}
		return cs, json.Unmarshal(v, &cs) == nil
	}
	sub, ok := spec("sub")
	if !ok {
		return claimsParam{}, "The sub member of the claims parameter must be null or an object."
	}
	if hasValue(sub.Value) {
		if json.Unmarshal(sub.Value, &p.sub) != nil || p.sub == "" {
			return claimsParam{}, "The value of the sub claim in the claims parameter must be a non-empty string."
		}
	}
	acr, ok := spec("acr")
	if !ok {
		return claimsParam{}, "The acr member of the claims parameter must be null or an object."
	}
	p.acrUnmet = acr.Essential && (hasValue(acr.Value) || len(acr.Values) > 0)
	return p, ""
}

// validateOIDC checks the OpenID Connect parameters of an authorization
// request whose redirect URI is already trusted: errors redirect. pushed is
// true at the pushed authorization request endpoint, which knows nothing of
// browser sessions (/authorize checks the pushed request again).
func (s *Server) validateOIDC(az *authzRequest, pushed bool) *authzError {
	form := az.form
	p := oidcParams{maxAge: -1}
	if slices.Contains(az.scopes, scopeOpenID) && !form.Has("redirect_uri") {
		// Core §3.1.2.1: REQUIRED. Not trusted without it: no redirect.
		return pageError(errInvalidRequest, "The redirect_uri parameter is required for OpenID Connect requests.")
	}
	for _, v := range strings.Fields(form.Get("prompt")) {
		switch v {
		case promptNone, promptLogin, promptConsent, "select_account":
		default:
			return redirectError(errInvalidRequest, "The prompt value '"+safeParam(v)+"' is not supported.")
		}
		if !slices.Contains(p.prompt, v) {
			p.prompt = append(p.prompt, v)
		}
	}
	if p.has(promptNone) && len(p.prompt) > 1 {
		return redirectError(errInvalidRequest, "prompt=none cannot be combined with other prompt values.")
	}
	if form.Has("max_age") {
		n, err := strconv.ParseInt(form.Get("max_age"), 10, 64)
		if err != nil || n < 0 || n > maxMaxAge {
			return redirectError(errInvalidRequest, "The max_age parameter must be a number of seconds.")
		}
		p.maxAge = n
	}
	if raw := form.Get("claims"); raw != "" {
		c, desc := parseClaimsParam(raw)
		if desc != "" {
			return redirectError(errInvalidRequest, desc)
		}
		p.claims = c.release.within(az.client.Scopes)
		p.claimsSub, p.acrUnmet = c.sub, c.acrUnmet
	}
	if hint := form.Get("id_token_hint"); hint != "" {
		c, keyGone := s.checkIDToken(hint)
		switch {
		case c != nil:
			p.hintSub = c.Subject
		case !keyGone:
			return redirectError(errInvalidRequest, "The id_token_hint is not an ID token issued by this server.")
		case pushed:
			// Checked again at /authorize, where the session is known.
		case p.has(promptNone):
			// One of our ID tokens under a key since deleted (a relying
			// party keeps its ID token as long as its session): whom it
			// names cannot be checked, so no session can be confirmed to
			// be theirs without the user (Core §3.1.2.1: login_required).
			return redirectError(errLoginRequired, "The id_token_hint can no longer be verified; the user must sign in.")
		default:
			// The same, interactively: the user signs in again (as for
			// prompt=login), so that a code is only issued to whoever
			// signs in, never silently to whoever is signed in.
			s.log.Debug("authorize: the id_token_hint's key is no longer published; the user signs in again")
			if !p.has(promptLogin) {
				p.prompt = append(p.prompt, promptLogin)
			}
		}
	}
	az.oidc = p
	return nil
}

// verifyIDToken checks an ID token's signature (with the key named by its
// kid), typ and issuer, but not its expiry (Core §3.1.2.1: expired hints
// are accepted).
func (s *Server) verifyIDToken(token string) (*idTokenClaims, bool) {
	c, _ := s.checkIDToken(token)
	return c, c != nil
}

// checkIDToken is verifyIDToken, and reports, for a token it cannot
// verify, whether that is only because the key named by its kid is no
// longer published (keyGone): a compact JWS with one signature of a
// supported algorithm, typ JWT or none, an unknown kid, and (unverified)
// our issuer, a subject and an audience. A token under a published key, or
// from another issuer, is not such a token: its verification failure stays
// an error. Nothing read from the unverified claims may be trusted: the
// end-session endpoint treats such a hint as absent, /authorize makes the
// user sign in again (validateOIDC).
func (s *Server) checkIDToken(token string) (c *idTokenClaims, keyGone bool) {
	if len(token) > maxTokenLength {
		return nil, false
	}
	jws, err := jose.ParseSignedCompact(token, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, false
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "" && !strings.EqualFold(typ, "JWT") {
		return nil, false // an access token (at+jwt) or a logout token is no ID token
	}
	payload := jws.UnsafePayloadWithoutVerification() // trusted only once verified
	key, found := s.keys.PublicKey(h.KeyID)
	if found {
		if key.Algorithm != h.Algorithm {
			return nil, false
		}
		if payload, err = jws.Verify(key); err != nil {
			return nil, false
		}
	}
	var claims idTokenClaims
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Issuer != s.cfg.Issuer || claims.Subject == "" || len(claims.Audience) == 0 {
		return nil, false
	}
	if !found {
		return nil, h.KeyID != ""
	}
	return &claims, false
}

// oidcGate acts on prompt, max_age, id_token_hint and the claims
// parameter's sub value and essential acr before sign-in and consent. It
// returns true when it answered the request.
func (s *Server) oidcGate(w http.ResponseWriter, r *http.Request, az *authzRequest, bs *browserSession, pendingID string) bool {
	p := az.oidc
	if p.acrUnmet {
		// Core §5.5.1.1: an essential acr we cannot assert is a failed
		// authentication; no sign-in could change that.
		s.authenticationFailed(w, r, az, pendingID, errAccessDenied,
			"The requested authentication context class (acr) is not supported.")
		return true
	}
	if bs == nil {
		if p.has(promptNone) {
			s.authorizeFailed(w, r, az, redirectError(errLoginRequired, "The user is not signed in."))
			return true
		}
		if p.loginSID == "" && (p.has(promptLogin) || p.maxAge >= 0 || p.namesUser()) {
			s.toLogin(w, r, az, "-", pendingID)
			return true
		}
		return false
	}
	// otherUser: the request names a user other than the signed-in one
	// (the subject, a pairwise HMAC for some clients, only when it names one).
	otherUser := func() bool {
		return p.namesUser() && p.namesOtherUser(subjectFor(s.strategy.pairwiseKey, &az.client, bs.user.ID))
	}
	if p.loginSID != "" && bs.sid != p.loginSID {
		// Signed in for this request: whoever signed in must be the user
		// the request names (Core §3.1.2.1, §5.5.1).
		if otherUser() {
			s.authenticationFailed(w, r, az, pendingID, errLoginRequired,
				"The user who signed in is not the one the application asked for.")
			return true
		}
		return false
	}
	fresh := p.has(promptLogin) || p.maxAge == 0 ||
		(p.maxAge > 0 && s.cfg.Now().Sub(bs.authTime) > time.Duration(p.maxAge)*time.Second) ||
		otherUser()
	if !fresh {
		return false
	}
	if p.has(promptNone) {
		s.authorizeFailed(w, r, az, redirectError(errLoginRequired, "The user must sign in again."))
		return true
	}
	s.toLogin(w, r, az, bs.sid, pendingID)
	return true
}

// authenticationFailed answers a request whose authentication failed for
// good: login_required with prompt=none (Core §3.1.2.6), code otherwise,
// redirected with state and iss. The pending request, if any, is consumed:
// it cannot succeed.
func (s *Server) authenticationFailed(w http.ResponseWriter, r *http.Request, az *authzRequest, pendingID, code, desc string) {
	if pendingID != "" && !s.consumePending(w, r, pendingID) {
		return
	}
	if az.oidc.has(promptNone) {
		code = errLoginRequired
	}
	s.authorizeFailed(w, r, az, redirectError(code, desc))
}

// toLogin sends the browser to sign in for az, remembering the sid of the
// session it had (see oidcParams.loginSID) in a new pending request.
func (s *Server) toLogin(w http.ResponseWriter, r *http.Request, az *authzRequest, sid, pendingID string) {
	if pendingID != "" && !s.consumePending(w, r, pendingID) {
		return
	}
	az.oidc.loginSID = sid
	id, err := s.savePending(r, az)
	if err != nil {
		s.authorizeFailed(w, r, az, pendingError(err))
		return
	}
	seeOther(w, s.path("/login?"+url.Values{fieldAuth: {id}}.Encode()))
}

// oidcHandledParams are validated and acted on by oidcGate, not by fosite
// (fosite would decode id_token_hint with a single key and compare
// auth_time with its own clock).
var oidcHandledParams = []string{"prompt", "max_age", "id_token_hint"}

// oidcFacts are the OpenID Connect facts of a grant, stored in its session.
type oidcFacts struct {
	Nonce  string        `json:"nonce,omitempty"`
	AMR    []string      `json:"amr,omitempty"`
	Claims claimsRequest `json:"claims,omitempty"`
}

// fillOIDCSession records what the ID token and userinfo need, for a grant
// with openid (requested, or the client's default set when no scope was).
// The claims requested through the claims parameter are recorded as
// decided now (their scopes consented, or a first-party client): what is
// released later never depends on a consent given or revoked afterwards.
func fillOIDCSession(sess *session, az *authzRequest) {
	if !slices.Contains(requestedScopes(az), scopeOpenID) {
		return
	}
	sess.OIDC = &oidcFacts{Nonce: az.form.Get("nonce"), AMR: []string{"pwd"}, Claims: az.oidc.claims}
}

// IDTokenClaims implements openid.Session: the claims fosite's handlers
// read and amend (at_hash); the ID token itself is built by GenerateIDToken.
func (s *session) IDTokenClaims() *jwt.IDTokenClaims {
	if s.idClaims == nil {
		s.idClaims = &jwt.IDTokenClaims{Subject: s.Subject, AuthTime: s.AuthTime, RequestedAt: s.AuthTime}
	}
	s.idClaims.Subject = s.Subject
	return s.idClaims
}

// IDTokenHeaders implements openid.Session; the algorithm selects the
// at_hash function (SHA-256 for RS256).
func (s *session) IDTokenHeaders() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]any{"alg": idTokenAlg}}
}

var _ openid.Session = (*session)(nil)

// The OpenID Connect request storage: the code's own record already holds
// everything (nonce, auth_time, sid, claims are in its session), so there
// is nothing more to store.
var _ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (f *fositeStore) CreateOpenIDConnectSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage:
// the token request, which carries the code's session, stands for it.
func (f *fositeStore) GetOpenIDConnectSession(_ context.Context, _ string, r fosite.Requester) (fosite.Requester, error) {
	s, ok := r.GetSession().(*session)
	if !ok || s.OIDC == nil {
		return nil, openid.ErrNoSessionFound
	}
	return r, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (f *fositeStore) DeleteOpenIDConnectSession(context.Context, string) error { return nil }

// oidcHandlers returns fosite's explicit-flow and refresh ID token handlers.
// Their prompt validator never decodes an id_token_hint (oidcGate handles
// it and issueCode does not pass it on), so it gets no signer.
func oidcHandlers(cfg fosite.Configurator, store *fositeStore, strategy *tokenStrategy) []any {
	helper := &openid.IDTokenHandleHelper{IDTokenStrategy: strategy}
	return []any{
		&openid.OpenIDConnectExplicitHandler{
			OpenIDConnectRequestStorage:   store,
			OpenIDConnectRequestValidator: openid.NewOpenIDConnectRequestValidator(nil, cfg),
			Config:                        cfg,
			IDTokenHandleHelper:           helper,
		},
		&openid.OpenIDConnectRefreshHandler{IDTokenHandleHelper: helper, Config: cfg},
	}
}

// idTokenClaims is the payload of an ID token (Core §2).
type idTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Nonce    string   `json:"nonce,omitempty"`
	AtHash   string   `json:"at_hash,omitempty"`
	AZP      string   `json:"azp,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	SID      string   `json:"sid,omitempty"`
	// MayAct names who may act for the subject in a token exchange
	// (RFC 8693 §4.4); it is read, never issued.
	MayAct *actor `json:"may_act,omitempty"`
	userClaims
}

// audience is an aud claim, which is a string or an array of strings
// (RFC 7519 §4.1.3); it is written as an array.
type audience []string

// UnmarshalJSON accepts both forms of the claim.
func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// userClaims are the claims about the user (Core §5.1) we can release.
type userClaims struct {
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	UpdatedAt         int64  `json:"updated_at,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// GenerateIDToken implements openid.OpenIDConnectTokenStrategy.
func (t *tokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	s, ok := r.GetSession().(*session)
	if !ok {
		return "", fosite.ErrServerError.WithDebug("unexpected session type")
	}
	facts := s.OIDC
	if facts == nil { // a grant with openid from before OpenID Connect support
		facts = &oidcFacts{AMR: []string{"pwd"}}
	}
	now := t.now().UTC().Truncate(time.Second)
	clientID := r.GetClient().GetID()
	c := idTokenClaims{
		Issuer:   t.issuer,
		Subject:  t.tokenSubject(ctx, s),
		Audience: []string{clientID},
		Expiry:   now.Add(lifespan).Unix(),
		IssuedAt: now.Unix(),
		AtHash:   s.IDTokenClaims().AccessTokenHash,
		AZP:      clientID,
		AMR:      facts.AMR,
		SID:      s.SessionID,
	}
	if !s.AuthTime.IsZero() {
		c.AuthTime = s.AuthTime.Unix()
	}
	// A refreshed ID token has no nonce (Core §12.2).
	if !r.GetRequestForm().Has("refresh_token") {
		c.Nonce = facts.Nonce
	}
	c.userClaims = releaseClaims(facts.Claims.IDToken, s.Name, s.Username, time.Time{})
	signer, err := t.keys.CurrentFor(idTokenAlg)
	if err != nil {
		signer, err = t.keys.Current()
		if err != nil {
			return "", fosite.ErrServerError.WithWrap(err)
		}
	}
	return t.signWith(ctx, signer, c, "JWT")
}

// releaseClaims fills the named claims from the user's facts.
func releaseClaims(names []string, name, email string, updated time.Time) userClaims {
	var u userClaims
	for _, n := range names {
		switch n {
		case "name":
			u.Name = name
		case "preferred_username":
			u.PreferredUsername = email
		case "updated_at":
			if !updated.IsZero() {
				u.UpdatedAt = updated.Unix()
			}
		case "email":
			u.Email = email
		case "email_verified":
			f := false // addresses are never verified by this server
			u.EmailVerified = &f
		}
	}
	return u
}

// idTokenSigningAlgs is id_token_signing_alg_values_supported: RS256,
// unless the key manager has no RS256 key (ID tokens then use its key).
func (s *Server) idTokenSigningAlgs() []string {
	if _, err := s.keys.CurrentFor(idTokenAlg); err == nil {
		return []string{idTokenAlg}
	}
	if cur, err := s.keys.Current(); err == nil {
		return []string{cur.Algorithm}
	}
	return []string{idTokenAlg}
}
